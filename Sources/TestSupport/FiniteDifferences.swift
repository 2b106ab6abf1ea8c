// Finite-difference checks of gradients (float32 central differences on sampled coordinates)
// and, by applying the same check to a function that itself computes a gradient with
// `createGraph: true`, of second-order gradients.
import TensorCore

public struct GradientCheckResult: CustomStringConvertible {
    public var failures: [String] = []
    public var checked = 0
    public var description: String { failures.isEmpty ? "ok (\(checked) coordinates)" : failures.joined(separator: "\n") }
}

/// Compares the autograd gradient of the scalar `f(inputs)` with central differences at up to
/// `samples` coordinates per input. A coordinate passes when
/// |numeric - analytic| <= atol * max|analytic| + rtol * |analytic|.
///
/// Precision (the tensor core is float32, so the differences are too): the central difference
/// (f(x + h) - f(x - h)) / 2h has a truncation error of about h^2 |f'''| / 6 and a rounding error
/// of about 2^-24 |f| / h. With the default step h = 1e-2, inputs of order 1 and the projected
/// scalar f of order 10, these are ~1e-5 and ~1e-4 relative to a gradient of order 1, well inside
/// the default rtol 2e-2 / atol 1e-2 (relative to the largest gradient entry); a failing
/// coordinate is therefore a wrong rule, not noise. Operators with kinks (ReLU, max, clamp,
/// |x|) are checked on inputs kept at least 0.1 away from the kink, farther than h.
public func checkGradients(_ inputs: [Tensor], eps: Float = 1e-2, samples: Int = 16, rtol: Float = 2e-2,
                           atol: Float = 1e-2, seed: UInt64 = 1, _ f: ([Tensor]) -> Tensor) -> GradientCheckResult {
    for x in inputs { x.requiresGrad = true }
    let loss = f(inputs)
    precondition(loss.count == 1, "checkGradients needs a scalar function")
    let analytic = Autograd.grad(of: [loss], wrt: inputs)
    var result = GradientCheckResult()
    let picker = RandomGenerator(seed: seed)
    for (n, x) in inputs.enumerated() {
        let g = analytic[n] ?? Tensor.zeros(x.shape)
        let scale = g.toArray().map { Swift.abs($0) }.max() ?? 0
        let indices = x.count <= samples ? Array(0..<x.count) : (0..<samples).map { _ in picker.nextInt(x.count) }
        for i in indices {
            let saved = x.data[i]
            x.data[i] = saved + eps
            let plus = noGrad { f(inputs).item() }
            x.data[i] = saved - eps
            let minus = noGrad { f(inputs).item() }
            x.data[i] = saved
            let numeric = (plus - minus) / (2 * eps)
            let a = g.data[i]
            result.checked += 1
            if !(Swift.abs(numeric - a) <= atol * scale + rtol * Swift.abs(a)) {
                result.failures.append("input \(n) \(x.shape) element \(i): analytic \(a), numeric \(numeric) (max|grad| \(scale))")
            }
        }
    }
    return result
}

/// Checks second-order gradients: the gradient of s(inputs) = sum(v * d f / d inputs[0])
/// (computed with createGraph) against finite differences of that first-order gradient.
public func checkSecondOrder(_ inputs: [Tensor], eps: Float = 1e-2, samples: Int = 12, rtol: Float = 3e-2,
                             atol: Float = 2e-2, seed: UInt64 = 2, _ f: @escaping ([Tensor]) -> Tensor) -> GradientCheckResult {
    let v = RandomGenerator(seed: seed + 100).normal(inputs[0].shape)
    return checkGradients(inputs, eps: eps, samples: samples, rtol: rtol, atol: atol, seed: seed) { xs in
        // The inner gradient needs a recorded forward pass even when the caller is in noGrad.
        withGradMode(true) {
            let inner = f(xs)
            let g = Autograd.grad(of: [inner], wrt: [xs[0]], createGraph: true)[0] ?? Tensor.zeros(xs[0].shape)
            return (g * v).sum()
        }
    }
}
