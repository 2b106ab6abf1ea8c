// clamp, where and lerp. The clamp gradient passes only strictly inside (min, max), as
// PyTorch 2.x does; `where` takes a 0/1 condition tensor (no gradient).

/// out = g where lo < x < hi, else 0. Linear in g.
func clampGradient(_ g: Tensor, _ x: Tensor, _ lo: Float, _ hi: Float) -> Tensor {
    let out = Elementwise.zip(g, x, Fn.ClampGradient(lo: lo, hi: hi))
    return out.recorded("clamp_gradient", [g]) { gg, _ in [clampGradient(gg, x, lo, hi)] }
}

extension Tensor {
    public func clamp(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        Elementwise.map(self, Fn.Clamp(lo: lo, hi: hi)).recorded("clamp", [self]) { g, _ in
            [clampGradient(g, self, lo, hi)]
        }
    }

    /// Elements of `self` where `condition` is non-zero, else of `other` (same shapes).
    public func `where`(_ condition: Tensor, else other: Tensor) -> Tensor {
        let out = Elementwise.zip3(condition, self, other, Fn.Select())
        return out.recorded("where", [self, other]) { g, needs in
            [needs[0] ? g.masked(by: condition, keep: true) : nil, needs[1] ? g.masked(by: condition, keep: false) : nil]
        }
    }

    /// g where condition != 0 (keep) or == 0 (!keep), else 0.
    func masked(by condition: Tensor, keep: Bool) -> Tensor {
        let out = Elementwise.zip(self, condition, Fn.Masked(keep: keep))
        return out.recorded("masked", [self]) { gg, _ in [gg.masked(by: condition, keep: keep)] }
    }
}

/// a + t (b - a).
public func lerp(_ a: Tensor, _ b: Tensor, _ t: Float) -> Tensor { a + (b - a) * t }

/// a + t (b - a) with a tensor weight.
public func lerp(_ a: Tensor, _ b: Tensor, _ t: Tensor) -> Tensor { a + (b - a) * t }
