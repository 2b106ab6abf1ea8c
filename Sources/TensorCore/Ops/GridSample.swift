// affine_grid and grid_sample (bilinear, align_corners=False; zeros, border or reflection
// padding) with PyTorch's coordinate conventions (spec ops.md section 10). grid_sample is
// linear in the input: its input gradient is the adjoint scatter, whose gradient is
// grid_sample again. The gradient with respect to the grid is computed as PyTorch does.
#if canImport(Glibc)
import Glibc
#endif

public enum GridPadding: Sendable { case zeros, border, reflection }

/// Sampling grid of `theta` [N, 2, 3] for an output of height h and width w: [N, h, w, 2].
public func affineGrid(_ theta: Tensor, height h: Int, width w: Int) -> Tensor {
    guard theta.rank == 3, theta.shape[1] == 2, theta.shape[2] == 3 else { shapeFailure("affine_grid expects theta [N, 2, 3], got \(theta.shape)") }
    let n = theta.shape[0]
    let base = Tensor(uninitializedShape: [1, h * w, 3])
    for i in 0..<h {
        for j in 0..<w {
            let k = (i * w + j) * 3
            base.data[k] = (2 * Float(j) + 1) / Float(w) - 1
            base.data[k + 1] = (2 * Float(i) + 1) / Float(h) - 1
            base.data[k + 2] = 1
        }
    }
    return matmul(base.broadcastTo([n, h * w, 3]), theta, transposeB: true).reshaped([n, h, w, 2])
}

/// Unnormalised source coordinate and its derivative with respect to the grid value.
@inline(__always)
private func sourceCoordinate(_ g: Float, size: Int, padding: GridPadding) -> (Float, Float) {
    var x = ((g + 1) * Float(size) - 1) / 2
    var d = Float(size) / 2
    func clip(_ v: Float) -> (Float, Float) {
        if v <= 0 { return (0, 0) }
        if v >= Float(size - 1) { return (Float(size - 1), 0) }
        return (v, 1)
    }
    switch padding {
    case .zeros:
        break
    case .border:
        let (c, dc) = clip(x)
        x = c
        d *= dc
    case .reflection:
        // reflect_coordinates(x, -1, 2 size - 1), then clip.
        let low: Float = -0.5, span = Float(size)
        var v = x - low
        var sign: Float = 1
        if v < 0 { sign = -1; v = -v }
        let extra = fmodf(v, span)
        let flips = Int((v / span).rounded(.down))
        let r: Float
        if flips % 2 == 0 { r = extra + low } else { r = span - extra + low; sign = -sign }
        let (c, dc) = clip(r)
        x = c
        d *= sign * dc
    }
    return (x, d)
}

/// Bilinear corners of a source point: indices (or -1) and weights.
@inline(__always)
private func corners(_ x: Float, _ y: Float, w: Int, h: Int) -> (idx: (Int, Int, Int, Int), wt: (Float, Float, Float, Float), x0: Float, y0: Float) {
    // A point far outside (or NaN, from a degenerate transform) reads nothing.
    guard x > -2, x < Float(w) + 1, y > -2, y < Float(h) + 1 else { return ((-1, -1, -1, -1), (0, 0, 0, 0), 0, 0) }
    let x0 = x.rounded(.down), y0 = y.rounded(.down)
    let ix = Int(x0), iy = Int(y0)
    let tx = x - x0, ty = y - y0
    func index(_ cx: Int, _ cy: Int) -> Int { (cx >= 0 && cx < w && cy >= 0 && cy < h) ? cy * w + cx : -1 }
    return ((index(ix, iy), index(ix + 1, iy), index(ix, iy + 1), index(ix + 1, iy + 1)),
            ((1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty), x0, y0)
}

/// Samples `input` [N, C, H, W] at `grid` [N, Ho, Wo, 2] (x, y in [-1, 1]).
public func gridSample(_ input: Tensor, _ grid: Tensor, padding: GridPadding = .zeros) -> Tensor {
    guard input.rank == 4, grid.rank == 4, grid.shape[3] == 2, grid.shape[0] == input.shape[0] else {
        shapeFailure("grid_sample of \(input.shape) with grid \(grid.shape)")
    }
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (ho, wo) = (grid.shape[1], grid.shape[2])
    let out = Tensor(uninitializedShape: [n, c, ho, wo])
    let src = input.data, gp = grid.data, dst = out.data
    Parallel.forRange(n * ho, grain: max(1, 4096 / max(wo * c, 1))) { rows in
        for row in rows {
            let b = row / ho, i = row % ho
            for j in 0..<wo {
                let gi = ((b * ho + i) * wo + j) * 2
                let (x, _) = sourceCoordinate(gp[gi], size: w, padding: padding)
                let (y, _) = sourceCoordinate(gp[gi + 1], size: h, padding: padding)
                let (idx, wt, _, _) = corners(x, y, w: w, h: h)
                for ch in 0..<c {
                    let plane = src + (b * c + ch) * h * w
                    var v: Float = 0
                    if idx.0 >= 0 { v += plane[idx.0] * wt.0 }
                    if idx.1 >= 0 { v += plane[idx.1] * wt.1 }
                    if idx.2 >= 0 { v += plane[idx.2] * wt.2 }
                    if idx.3 >= 0 { v += plane[idx.3] * wt.3 }
                    dst[((b * c + ch) * ho + i) * wo + j] = v
                }
            }
        }
    }
    return out.recorded("grid_sample", [input, grid]) { g, needs in
        [needs[0] ? gridSampleAdjoint(g, grid.detach(), padding: padding, inputShape: input.shape) : nil,
         needs[1] ? gridSampleGridGradient(g, input, grid, padding: padding) : nil]
    }
}

/// Adjoint of grid_sample in its input (scatter of g * weight to the four corners).
func gridSampleAdjoint(_ g: Tensor, _ grid: Tensor, padding: GridPadding, inputShape: [Int]) -> Tensor {
    let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
    let (ho, wo) = (grid.shape[1], grid.shape[2])
    let out = Tensor.zeros(inputShape)
    let gsrc = g.data, gp = grid.data, dst = out.data
    // Parallel over (batch, channel) planes: each writes only its own plane.
    Parallel.forRange(n * c, grain: 1) { planes in
        for pc in planes {
            let b = pc / c
            let plane = dst + pc * h * w
            for i in 0..<ho {
                for j in 0..<wo {
                    let gi = ((b * ho + i) * wo + j) * 2
                    let (x, _) = sourceCoordinate(gp[gi], size: w, padding: padding)
                    let (y, _) = sourceCoordinate(gp[gi + 1], size: h, padding: padding)
                    let (idx, wt, _, _) = corners(x, y, w: w, h: h)
                    let v = gsrc[(pc * ho + i) * wo + j]
                    if idx.0 >= 0 { plane[idx.0] += v * wt.0 }
                    if idx.1 >= 0 { plane[idx.1] += v * wt.1 }
                    if idx.2 >= 0 { plane[idx.2] += v * wt.2 }
                    if idx.3 >= 0 { plane[idx.3] += v * wt.3 }
                }
            }
        }
    }
    return out.recorded("grid_sample_adjoint", [g]) { gg, _ in [gridSample(gg, grid, padding: padding)] }
}

/// d loss / d grid (first order; not itself differentiable).
func gridSampleGridGradient(_ g: Tensor, _ input: Tensor, _ grid: Tensor, padding: GridPadding) -> Tensor {
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (ho, wo) = (grid.shape[1], grid.shape[2])
    let out = Tensor(uninitializedShape: grid.shape)
    let src = input.data, gsrc = g.data, gp = grid.data, dst = out.data
    Parallel.forRange(n * ho, grain: max(1, 4096 / max(wo * c, 1))) { rows in
        for row in rows {
            let b = row / ho, i = row % ho
            for j in 0..<wo {
                let gi = ((b * ho + i) * wo + j) * 2
                let (x, dx) = sourceCoordinate(gp[gi], size: w, padding: padding)
                let (y, dy) = sourceCoordinate(gp[gi + 1], size: h, padding: padding)
                let (idx, _, x0, y0) = corners(x, y, w: w, h: h)
                let tx = x - x0, ty = y - y0
                var gx: Float = 0, gy: Float = 0
                for ch in 0..<c {
                    let plane = src + (b * c + ch) * h * w
                    let go = gsrc[((b * c + ch) * ho + i) * wo + j]
                    let v00 = idx.0 >= 0 ? plane[idx.0] : 0, v10 = idx.1 >= 0 ? plane[idx.1] : 0
                    let v01 = idx.2 >= 0 ? plane[idx.2] : 0, v11 = idx.3 >= 0 ? plane[idx.3] : 0
                    gx += go * ((v10 - v00) * (1 - ty) + (v11 - v01) * ty)
                    gy += go * ((v01 - v00) * (1 - tx) + (v11 - v10) * tx)
                }
                dst[gi] = gx * dx
                dst[gi + 1] = gy * dy
            }
        }
    }
    return out
}
