// Broadcasting arithmetic (+, -, *, /) between tensors and with scalars, negation, and the
// in-place accumulation used by the autograd engine and optimizers. Gradients are summed back
// over broadcast dimensions (`sumTo`).

// Rules capture only what they need (shapes for + and -; for * and / an input only when the
// other one's gradient needs it), so inputs are not kept alive for gradients nobody wants.

public func + (a: Tensor, b: Tensor) -> Tensor {
    let aShape = a.shape, bShape = b.shape
    return Elementwise.broadcast(a, b, Fn.Add()).recorded("add", [a, b]) { g, needs in
        [needs[0] ? g.sumTo(aShape) : nil, needs[1] ? g.sumTo(bShape) : nil]
    }
}

public func - (a: Tensor, b: Tensor) -> Tensor {
    let aShape = a.shape, bShape = b.shape
    return Elementwise.broadcast(a, b, Fn.Subtract()).recorded("sub", [a, b]) { g, needs in
        [needs[0] ? g.sumTo(aShape) : nil, needs[1] ? (-g).sumTo(bShape) : nil]
    }
}

public func * (a: Tensor, b: Tensor) -> Tensor {
    let aShape = a.shape, bShape = b.shape
    return Elementwise.broadcast(a, b, Fn.Multiply()).recorded("mul", [a, b]) { [keptA = b.requiresGrad ? a : nil, keptB = a.requiresGrad ? b : nil] g, needs in
        [needs[0] ? (g * keptB!).sumTo(aShape) : nil, needs[1] ? (g * keptA!).sumTo(bShape) : nil]
    }
}

public func / (a: Tensor, b: Tensor) -> Tensor {
    let aShape = a.shape, bShape = b.shape
    return Elementwise.broadcast(a, b, Fn.Divide()).recorded("div", [a, b]) { [keptA = b.requiresGrad ? a : nil] g, needs in
        [needs[0] ? (g / b).sumTo(aShape) : nil,
         needs[1] ? (-(g * keptA!) / (b * b)).sumTo(bShape) : nil]
    }
}

public prefix func - (a: Tensor) -> Tensor {
    Elementwise.map(a, Fn.Negate()).recorded("neg", [a]) { g, _ in [-g] }
}

public func + (a: Tensor, s: Float) -> Tensor {
    Elementwise.map(a, Fn.AddConstant(c: s)).recorded("add_scalar", [a]) { g, _ in [g] }
}

public func + (s: Float, a: Tensor) -> Tensor { a + s }

public func - (a: Tensor, s: Float) -> Tensor { a + (-s) }

public func - (s: Float, a: Tensor) -> Tensor {
    Elementwise.map(a, Fn.SubtractFromConstant(c: s)).recorded("rsub_scalar", [a]) { g, _ in [-g] }
}

public func * (a: Tensor, s: Float) -> Tensor {
    Elementwise.map(a, Fn.MulConstant(c: s)).recorded("mul_scalar", [a]) { g, _ in [g * s] }
}

public func * (s: Float, a: Tensor) -> Tensor { a * s }

public func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }

public func / (s: Float, a: Tensor) -> Tensor {
    let out = Elementwise.map(a, Fn.DivideConstant(c: s))
    return out.recorded("rdiv_scalar", [a]) { g, _ in [-(g * s) / (a * a)] }
}

extension Tensor {
    /// self += other (same element count), untracked. For gradient accumulation and optimizers.
    public func addInPlace(_ other: Tensor, scale: Float = 1) {
        guard other.count == count else { shapeFailure("addInPlace \(other.shape) into \(shape)") }
        let dst = data, src = other.data
        if scale == 1 {
            Parallel.forRange(count) { r in for i in r { dst[i] += src[i] } }
        } else {
            Parallel.forRange(count) { r in for i in r { dst[i] += scale * src[i] } }
        }
    }

    /// self *= s, untracked.
    public func scaleInPlace(_ s: Float) {
        let dst = data
        Parallel.forRange(count) { r in for i in r { dst[i] *= s } }
    }

    /// Fused multiply-add `self * b + c` (broadcasting), StyleGAN2's `fma`.
    public func fma(_ b: Tensor, _ c: Tensor) -> Tensor { self * b + c }
}
