// Activations: relu, leaky relu, sigmoid, tanh, softplus. ReLU-type gradients use the
// `maskGradient` primitive (g where the reference is positive, slope * g elsewhere), whose own
// gradient is the same mask, so second-order gradients flow through piecewise-linear layers.
#if canImport(Glibc)
import Glibc
#endif

/// out = g where ref > 0, else slope * g. Linear in `g`; no gradient to `ref`.
func maskGradient(_ g: Tensor, reference ref: Tensor, slope: Float) -> Tensor {
    let out = Elementwise.zip(g, ref) { $1 > 0 ? $0 : slope * $0 }
    return out.recorded("mask_gradient", [g]) { gg, _ in [maskGradient(gg, reference: ref, slope: slope)] }
}

extension Tensor {
    /// max(x, 0); the gradient at 0 is 0 (PyTorch).
    public func relu() -> Tensor {
        let out = Elementwise.map(self) { $0 > 0 ? $0 : 0 }
        return out.recorded("relu", [self]) { g, _ in [maskGradient(g, reference: self, slope: 0)] }
    }

    /// x if x > 0 else slope * x; the gradient at 0 is the slope (PyTorch).
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        Elementwise.map(self) { $0 > 0 ? $0 : slope * $0 }.recorded("leaky_relu", [self]) { g, _ in
            [maskGradient(g, reference: self, slope: slope)]
        }
    }

    public func sigmoid() -> Tensor {
        let out = Elementwise.map(self) { 1 / (1 + Glibc.expf(-$0)) }
        return out.recorded("sigmoid", [self]) { [unowned out] g, _ in [g * out * (1 - out)] }
    }

    public func tanh() -> Tensor {
        let out = Elementwise.map(self) { Glibc.tanhf($0) }
        return out.recorded("tanh", [self]) { [unowned out] g, _ in [g * (1 - out * out)] }
    }

    /// log(1 + exp(x)), returning x where x > 20 (PyTorch's threshold, beta 1).
    public func softplus() -> Tensor {
        Elementwise.map(self) { $0 > 20 ? $0 : Glibc.log1pf(Glibc.expf($0)) }.recorded("softplus", [self]) { g, _ in
            [g * self.sigmoid()]
        }
    }
}
