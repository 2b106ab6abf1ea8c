// Element-wise math: exp, log, sqrt, rsqrt, abs, square, pow (scalar exponent), sign.
// Each gradient is written with differentiable operations (second-order ready).
#if canImport(Glibc)
import Glibc
#endif

extension Tensor {
    public func exp() -> Tensor {
        let out = Elementwise.map(self, Fn.Exp())
        return out.recordedWithOutput("exp", [self]) { g, _, out in [g * out] }
    }

    public func log() -> Tensor {
        Elementwise.map(self, Fn.Log()).recorded("log", [self]) { g, _ in [g / self] }
    }

    public func sqrt() -> Tensor {
        let out = Elementwise.map(self, Fn.Sqrt())
        return out.recordedWithOutput("sqrt", [self]) { g, _, out in [g * 0.5 / out] }
    }

    /// 1 / sqrt(x).
    public func rsqrt() -> Tensor {
        let out = Elementwise.map(self, Fn.Rsqrt())
        // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 * out^3
        return out.recordedWithOutput("rsqrt", [self]) { g, _, out in [g * (out * out * out) * -0.5] }
    }

    public func abs() -> Tensor {
        Elementwise.map(self, Fn.Abs()).recorded("abs", [self]) { g, _ in [g * self.sign()] }
    }

    public func square() -> Tensor {
        Elementwise.map(self, Fn.Square()).recorded("square", [self]) { g, _ in [g * self * 2] }
    }

    /// x^p for a scalar exponent.
    public func pow(_ p: Float) -> Tensor {
        if p == 2 { return square() }
        if p == 1 { return self * 1 }
        return Elementwise.map(self, Fn.Power(p: p)).recorded("pow", [self]) { g, _ in
            [g * self.pow(p - 1) * p]
        }
    }

    /// -1, 0 or 1 (zero gradient).
    public func sign() -> Tensor {
        Elementwise.map(self, Fn.Sign())
    }
}
