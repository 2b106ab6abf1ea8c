// Broadcasting arithmetic (+, -, *, /) between tensors and with scalars, negation, and the
// in-place accumulation used by the autograd engine and optimizers. Gradients are summed back
// over broadcast dimensions (`sumTo`).

public func + (a: Tensor, b: Tensor) -> Tensor {
    Elementwise.broadcast(a, b) { $0 + $1 }.recorded("add", [a, b]) { g, needs in
        [needs[0] ? g.sumTo(a.shape) : nil, needs[1] ? g.sumTo(b.shape) : nil]
    }
}

public func - (a: Tensor, b: Tensor) -> Tensor {
    Elementwise.broadcast(a, b) { $0 - $1 }.recorded("sub", [a, b]) { g, needs in
        [needs[0] ? g.sumTo(a.shape) : nil, needs[1] ? (-g).sumTo(b.shape) : nil]
    }
}

public func * (a: Tensor, b: Tensor) -> Tensor {
    Elementwise.broadcast(a, b) { $0 * $1 }.recorded("mul", [a, b]) { g, needs in
        [needs[0] ? (g * b).sumTo(a.shape) : nil, needs[1] ? (g * a).sumTo(b.shape) : nil]
    }
}

public func / (a: Tensor, b: Tensor) -> Tensor {
    Elementwise.broadcast(a, b) { $0 / $1 }.recorded("div", [a, b]) { g, needs in
        [needs[0] ? (g / b).sumTo(a.shape) : nil,
         needs[1] ? (-(g * a) / (b * b)).sumTo(b.shape) : nil]
    }
}

public prefix func - (a: Tensor) -> Tensor {
    Elementwise.map(a) { -$0 }.recorded("neg", [a]) { g, _ in [-g] }
}

public func + (a: Tensor, s: Float) -> Tensor {
    Elementwise.map(a) { $0 + s }.recorded("add_scalar", [a]) { g, _ in [g] }
}

public func + (s: Float, a: Tensor) -> Tensor { a + s }

public func - (a: Tensor, s: Float) -> Tensor { a + (-s) }

public func - (s: Float, a: Tensor) -> Tensor {
    Elementwise.map(a) { s - $0 }.recorded("rsub_scalar", [a]) { g, _ in [-g] }
}

public func * (a: Tensor, s: Float) -> Tensor {
    Elementwise.map(a) { $0 * s }.recorded("mul_scalar", [a]) { g, _ in [g * s] }
}

public func * (s: Float, a: Tensor) -> Tensor { a * s }

public func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }

public func / (s: Float, a: Tensor) -> Tensor {
    let out = Elementwise.map(a) { s / $0 }
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
