// Padding of the last two dimensions, `[left, right, top, bottom]` (PyTorch F.pad order).
// Constant padding accepts negative amounts (cropping); its gradient is the opposite pad.
// Reflect padding is a gather, so its gradient is the matching scatter.

public enum PadMode: Sendable { case constant(Float), reflect }

extension Tensor {
    public func pad(_ p: (left: Int, right: Int, top: Int, bottom: Int), mode: PadMode = .constant(0)) -> Tensor {
        switch mode {
        case .constant(let value): return padConstant(p.left, p.right, p.top, p.bottom, value: value)
        case .reflect: return padReflect(p.left, p.right, p.top, p.bottom)
        }
    }

    func padConstant(_ l: Int, _ r: Int, _ t: Int, _ b: Int, value: Float) -> Tensor {
        guard rank >= 2 else { shapeFailure("pad needs at least 2 dimensions, got \(shape)") }
        let h = shape[rank - 2], w = shape[rank - 1]
        let oh = h + t + b, ow = w + l + r
        guard oh >= 0, ow >= 0 else { shapeFailure("pad \((l, r, t, b)) crops \(shape) below zero size") }
        let planes = count / max(h * w, 1)
        let out = Tensor(uninitializedShape: Array(shape.dropLast(2)) + [oh, ow])
        let src = data, dst = out.data
        let x0 = max(0, l), x1 = min(ow, w + l)  // output columns that map into the input
        Parallel.forRange(planes * oh, grain: max(1, 16_384 / max(ow, 1))) { rows in
            for row in rows {
                let pl = row / oh, oy = row % oh
                let o = dst + row * ow
                let iy = oy - t
                if iy < 0 || iy >= h || x1 <= x0 {
                    o.update(repeating: value, count: ow)
                    continue
                }
                if x0 > 0 { o.update(repeating: value, count: x0) }
                if x1 < ow { (o + x1).update(repeating: value, count: ow - x1) }
                (o + x0).update(from: src + (pl * h + iy) * w + (x0 - l), count: x1 - x0)
            }
        }
        return out.recorded("pad", [self]) { g, _ in [g.padConstant(-l, -r, -t, -b, value: 0)] }
    }

    func padReflect(_ l: Int, _ r: Int, _ t: Int, _ b: Int) -> Tensor {
        let h = shape[rank - 2], w = shape[rank - 1]
        guard l >= 0, r >= 0, t >= 0, b >= 0, l < w, r < w, t < h, b < h else {
            shapeFailure("reflect pad \((l, r, t, b)) must be smaller than the input size \(h)x\(w)")
        }
        func reflect(_ i: Int, _ n: Int) -> Int { i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i) }
        let oh = h + t + b, ow = w + l + r
        let planes = count / max(h * w, 1)
        var flat = [Int32](repeating: 0, count: planes * oh * ow)
        for pl in 0..<planes {
            for oy in 0..<oh {
                let iy = reflect(oy - t, h)
                for ox in 0..<ow { flat[(pl * oh + oy) * ow + ox] = Int32((pl * h + iy) * w + reflect(ox - l, w)) }
            }
        }
        return gather(self, FlatIndices(flat), outShape: Array(shape.dropLast(2)) + [oh, ow])
    }
}
