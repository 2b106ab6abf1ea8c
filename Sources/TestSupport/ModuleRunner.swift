// Runs a golden case of a module: loads its state dict from the case (strict), calls it on the
// stored inputs, and compares outputs, input and parameter gradients, and updated buffers.
import NN
import TensorCore

/// Loads a module's parameters from a golden case (strict), then runs `body` with the inputs
/// (those with stored gradients require grad), backpropagates sum(output * R) and compares
/// outputs, input gradients and parameter gradients.
/// Every stored result must be computed and compared; `exempt` lists the ones a test
/// deliberately leaves out.
public func runModuleCase(_ name: String, module: Module, outliers: Int = 0, exempt: Set<String> = [],
                   _ body: (GoldenCase, [String: Tensor]) throws -> [String: Tensor]) throws -> [String] {
    let golden = try GoldenCase(name)
    try module.load(golden.stateDict(keys: module.stateDict().map(\.key)))
    var inputs: [String: Tensor] = [:]
    for key in golden.keys(withPrefix: "input.") where !key.hasPrefix("input.R.") {
        let t = try golden.tensor(key)
        if golden.has("grad.\(key)") { t.requiresGrad = true }
        inputs[key] = t
    }
    let outputs = try body(golden, inputs)
    var failures = outputs.compactMap { golden.has($0.key) ? golden.check($0.key, $0.value) : nil }
    let loss = try goldenLoss(golden, outputs)
    loss?.backward()
    for (key, t) in inputs where golden.has("grad.\(key)") {
        if let f = golden.check("grad.\(key)", t.grad ?? Tensor.zeros(t.shape), outliers: outliers) { failures.append(f) }
    }
    var grads: [String: Tensor] = [:]
    for (k, t) in module.namedParameters() { grads[k] = t.grad ?? Tensor.zeros(t.shape) }
    for key in golden.keys(withPrefix: "grad.param.") {
        if let f = golden.check(key, grads[String(key.dropFirst("grad.param.".count))], outliers: outliers) { failures.append(f) }
    }
    let state = Dictionary(uniqueKeysWithValues: module.stateDict().map { ($0.key, $0.tensor) })
    for key in golden.keys(withPrefix: "state_after.") {
        if let f = golden.check(key, state[String(key.dropFirst("state_after.".count))]) { failures.append(f) }
    }
    return failures + golden.uncheckedKeys(exempt: exempt)
}

