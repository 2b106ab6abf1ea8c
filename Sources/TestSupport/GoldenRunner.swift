// Runs a golden case of a function: loads inputs and parameters, calls the function, and
// compares outputs, gradients of sum(output * R) and updated buffers with the golden values.
import TensorCore

/// Runs an op case: `body` maps the loaded tensors (keys "input.x", "param.weight", ...) to
/// outputs (keys "output.y", ...). Every stored result must be computed and compared; `exempt`
/// lists the ones a test deliberately leaves out.
public func runOpCase(_ name: String, outliers: Int = 0, exempt: Set<String> = [],
                      _ body: (GoldenCase, [String: Tensor]) throws -> [String: Tensor]) throws -> [String] {
    try runOpCase(try GoldenCase(name), outliers: outliers, exempt: exempt, body)
}

public func runOpCase(_ golden: GoldenCase, outliers: Int = 0, exempt: Set<String> = [],
                      _ body: (GoldenCase, [String: Tensor]) throws -> [String: Tensor]) throws -> [String] {
    let name = golden.name
    var tensors: [String: Tensor] = [:]
    for key in golden.file.names where key.hasPrefix("input.") || key.hasPrefix("param.") {
        let t = try golden.tensor(key)
        if golden.has("grad.\(key)") { t.requiresGrad = true }
        tensors[key] = t
    }
    let outputs = try body(golden, tensors)
    var failures: [String] = []
    for (key, value) in outputs where golden.has(key) {
        if let f = golden.check(key, value) { failures.append(f) }
    }
    let loss = try goldenLoss(golden, outputs)
    if let loss, loss.requiresGrad { loss.backward() }
    for key in golden.keys(withPrefix: "grad.") {
        let source = String(key.dropFirst("grad.".count))
        guard let t = tensors[source] else { failures.append("\(name): no tensor for \(key)"); continue }
        if let f = golden.check(key, t.grad ?? Tensor.zeros(t.shape), outliers: outliers) { failures.append(f) }
    }
    for key in golden.keys(withPrefix: "state_after.") {
        let source = "param." + key.dropFirst("state_after.".count)
        if let f = golden.check(key, tensors[source]) { failures.append(f) }
    }
    return failures + golden.uncheckedKeys(exempt: exempt)
}


/// The scalar whose gradients a golden case stores: sum_k sum(output.k * input.R.k), or the
/// scalar `output.loss` itself when the case has no random cotangents.
public func goldenLoss(_ golden: GoldenCase, _ outputs: [String: Tensor]) throws -> Tensor? {
    var loss: Tensor? = nil
    for (key, value) in outputs.sorted(by: { $0.key < $1.key }) {
        let rKey = "input.R." + key.dropFirst("output.".count)
        guard golden.has(rKey) else { continue }
        let term = (value * (try golden.tensor(rKey)).reshaped(value.shape)).sum()
        loss = loss.map { $0 + term } ?? term
    }
    if loss == nil, let value = outputs["output.loss"], value.count == 1 { loss = value }
    return loss
}
