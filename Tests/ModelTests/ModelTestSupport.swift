// Helpers of the model tests: manifest entries of a module, and golden comparisons.
import NN
import Testing
import TensorCore
import TestSupport

func manifestEntries(_ module: Module, keyMap: (String) -> String? = { $0 }) -> [Manifest.Entry] {
    module.stateDict().compactMap { e in
        keyMap(e.key).map { Manifest.Entry(key: $0, shape: e.tensor.shape, dtype: e.isInteger ? "int64" : "float32", kind: e.kind.rawValue) }
    }
}

func record(_ failures: [String?], sourceLocation: SourceLocation = #_sourceLocation) {
    for f in failures.compactMap({ $0 }) { Issue.record("\(f)", sourceLocation: sourceLocation) }
}

/// Gradient of every parameter under `keys` (by state-dict key), zeros where none.
func parameterGrads(_ module: Module) -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (k, t) in module.namedParameters() { out[k] = t.grad ?? Tensor.zeros(t.shape) }
    return out
}

/// L2 norm of a tensor in Double, as a 0-d tensor.
func l2(_ t: Tensor) -> Tensor {
    var s = 0.0
    for v in t.toArray() { s += Double(v) * Double(v) }
    return Tensor(scalar: Float(s.squareRoot()))
}
