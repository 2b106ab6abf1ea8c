// Activation recomputation (PyTorch's torch.utils.checkpoint): a sub-graph whose intermediate
// tensors are not kept for the backward pass but computed again when it reaches them. The
// forward pass runs `body` without recording; the backward rule runs it again with recording
// and differentiates that copy. Memory falls by the body's saved activations, time rises by one
// more forward pass of it. Results are bitwise those of the recorded body: the kernels see the
// same inputs twice.

/// `body(inputs)`, recorded as one operation whose backward pass recomputes `body`.
/// Every tensor `body` differentiates through must be among `inputs` (for a module with
/// trainable weights, pass its parameters too): other leaves get no gradient. `body` must be
/// deterministic and free of side effects (no random draws, no running statistics), because it
/// runs twice.
public func recomputed(_ inputs: [Tensor], _ body: @escaping ([Tensor]) -> Tensor) -> Tensor {
    guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return body(inputs) }
    let computed = noGrad { body(inputs) }
    // A new tensor over the result's buffer, so a body that hands back an input does not get
    // that input's graph node replaced.
    let out = Tensor(shape: computed.shape, sharing: computed.storage)
    return out.recorded("recomputed", inputs) { gradOutput, needs in
        let createGraph = GradMode.isEnabled
        let wanted = inputs.indices.filter { needs[$0] }
        if createGraph {
            // Gradients that are themselves differentiable: record the body on the original
            // inputs, so the gradient graph reaches them.
            let y = body(inputs)
            let grads = Autograd.grad(of: [y], wrt: wanted.map { inputs[$0] }, gradOutputs: [gradOutput], createGraph: true)
            return scatter(grads, wanted, inputs.count)
        }
        // Detached copies keep the inner backward pass from walking into (and releasing) the
        // outer graph.
        let fresh = inputs.map { t -> Tensor in
            let d = t.detach()
            d.requiresGrad = t.requiresGrad
            return d
        }
        let y = withGradMode(true) { body(fresh) }
        let grads = Autograd.grad(of: [y], wrt: wanted.map { fresh[$0] }, gradOutputs: [gradOutput])
        return scatter(grads, wanted, inputs.count)
    }
}

private func scatter(_ grads: [Tensor?], _ indices: [Int], _ count: Int) -> [Tensor?] {
    var out = [Tensor?](repeating: nil, count: count)
    for (g, i) in zip(grads, indices) { out[i] = g }
    return out
}
