// Activations: relu, leaky relu, sigmoid, tanh, softplus. ReLU-type gradients use the
// `maskGradient` primitive (g where the reference is positive, slope * g elsewhere), whose own
// gradient is the same mask, so second-order gradients flow through piecewise-linear layers.
#if canImport(Glibc)
import Glibc
#endif

/// out = g where ref > 0, else slope * g. Linear in `g`; no gradient to `ref`.
func maskGradient(_ g: Tensor, reference ref: Tensor, slope: Float) -> Tensor {
    let out = Elementwise.zip(g, ref, Fn.MaskGradient(slope: slope))
    return out.recorded("mask_gradient", [g]) { gg, _ in [maskGradient(gg, reference: ref, slope: slope)] }
}

extension Tensor {
    /// max(x, 0); the gradient at 0 is 0 (PyTorch).
    public func relu() -> Tensor {
        let out = Elementwise.map(self, Fn.Relu())
        return out.recorded("relu", [self]) { g, _ in [maskGradient(g, reference: self, slope: 0)] }
    }

    /// x if x > 0 else slope * x; the gradient at 0 is the slope (PyTorch).
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        Elementwise.map(self, Fn.LeakyRelu(slope: slope)).recorded("leaky_relu", [self]) { g, _ in
            [maskGradient(g, reference: self, slope: slope)]
        }
    }

    public func sigmoid() -> Tensor {
        let out = Elementwise.map(self, Fn.Sigmoid())
        return out.recordedWithOutput("sigmoid", [self]) { g, _, out in [g * out * (1 - out)] }
    }

    public func tanh() -> Tensor {
        let out = Elementwise.map(self, Fn.Tanh())
        return out.recordedWithOutput("tanh", [self]) { g, _, out in [g * (1 - out * out)] }
    }

    /// log(1 + exp(x)), returning x where x > 20 (PyTorch's threshold, beta 1).
    public func softplus() -> Tensor {
        Elementwise.map(self, Fn.Softplus()).recorded("softplus", [self]) { g, _ in
            [g * self.sigmoid()]
        }
    }
}

/// relu(a + b) for equally shaped tensors (residual connections), in one pass.
public func addRelu(_ a: Tensor, _ b: Tensor) -> Tensor {
    guard a.shape == b.shape else { shapeFailure("addRelu of \(a.shape) and \(b.shape)") }
    let out = Elementwise.zip(a, b, Fn.AddRelu())
    return out.recordedWithOutput("add_relu", [a, b]) { g, needs, out in
        let masked = maskGradient(g, reference: out, slope: 0)
        return [needs[0] ? masked : nil, needs[1] ? masked : nil]
    }
}
