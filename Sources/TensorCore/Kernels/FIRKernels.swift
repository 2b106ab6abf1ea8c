// Kernels of upfirdn2d (upsample by zero insertion, pad/crop, FIR filter, downsample) as
// per-axis tap tables: for every output index, the input indices it reads and which filter
// tap applies. Rank-1 filters (the separable 1-D filters and the [1,3,3,1] outer product) run
// as a horizontal then a vertical pass; other 2-D filters run directly.

/// For one axis: output size and, per output index, the (input index, tap index) pairs.
struct AxisTaps {
    let outputSize: Int
    let offsets: [Int]      // outputSize + 1 entries into `inputs` / `taps`
    let inputs: [Int32]
    let taps: [Int32]

    init(inputSize n: Int, up: Int, down: Int, pad0: Int, pad1: Int, taps k: Int) {
        let m = (n * up + pad0 + pad1 - k) / down + 1
        guard n * up + pad0 + pad1 - k >= 0, m >= 1 else {
            shapeFailure("upfirdn2d: input size \(n) with up \(up), padding [\(pad0), \(pad1)] is too small for \(k) taps")
        }
        outputSize = m
        var offsets = [0], inputs: [Int32] = [], tapList: [Int32] = []
        for o in 0..<m {
            for j in 0..<k {
                let q = o * down + j - pad0
                if q >= 0 && q < n * up && q % up == 0 {
                    inputs.append(Int32(q / up))
                    tapList.append(Int32(j))
                }
            }
            offsets.append(inputs.count)
        }
        self.offsets = offsets
        self.inputs = inputs
        self.taps = tapList
    }
}

enum FIRKernels {
    /// Separable filtering: `gx` taps along x, `gy` along y (already flipped and scaled).
    /// Horizontal pass: each input row is zero-inserted and padded into a scratch row, then
    /// filtered as a plain strided correlation (tap-outer loops vectorise). Vertical pass: each
    /// output row is a weighted sum of intermediate rows (from the y tap table).
    static func separable(_ x: UnsafePointer<Float>, planes: Int, h: Int, w: Int, tx: AxisTaps, ty: AxisTaps,
                          gx: [Float], gy: [Float], up: Int, down: Int, pad0: Int, pad1: Int,
                          out: UnsafeMutablePointer<Float>) {
        let ow = tx.outputSize, oh = ty.outputSize
        let length = w * up + pad0 + pad1
        let kx = gx.count
        Parallel.forRange(planes, grain: max(1, 4096 / max(1, oh * ow))) { range in
            var tmp = [Float](repeating: 0, count: h * ow)
            var row = [Float](repeating: 0, count: max(length, 1))
            var phases = [Float](repeating: 0, count: max(length, 1) + 2)
            tmp.withUnsafeMutableBufferPointer { t in
            row.withUnsafeMutableBufferPointer { u in
            phases.withUnsafeMutableBufferPointer { p in
            ty.offsets.withUnsafeBufferPointer { yo in
            ty.inputs.withUnsafeBufferPointer { yi in
            ty.taps.withUnsafeBufferPointer { yt in
            gx.withUnsafeBufferPointer { fx in
            gy.withUnsafeBufferPointer { fy in
                for plane in range {
                    let src = x + plane * h * w
                    for iy in 0..<h {
                        // Zero-inserted, padded (or cropped) row.
                        let r = src + iy * w
                        if up == 1 {
                            // A shifted copy: input ix lands at ix + pad0 (cropped when pad0 < 0).
                            let first = max(0, -pad0), last = min(w, length - pad0)
                            let lo = max(0, first + pad0), hi = max(lo, last + pad0)
                            (u.baseAddress!).update(repeating: 0, count: lo)
                            if hi > lo { (u.baseAddress! + lo).update(from: r + first, count: hi - lo) }
                            (u.baseAddress! + hi).update(repeating: 0, count: length - hi)
                        } else {
                            for k in 0..<length { u[k] = 0 }
                            for ix in 0..<w {
                                let k = ix * up + pad0
                                if k >= 0 && k < length { u[k] = r[ix] }
                            }
                        }
                        let dst = t.baseAddress! + iy * ow
                        for ox in 0..<ow { dst[ox] = 0 }
                        if down == 1 {
                            for j in 0..<kx {
                                let wj = fx[j], base = u.baseAddress! + j
                                for ox in 0..<ow { dst[ox] += wj * base[ox] }
                            }
                        } else if down == 2 {
                            // De-interleave once into even / odd phases, then contiguous taps:
                            // dst[ox] += f[j] * u[2 ox + j] = f[j] * phase[j % 2][ox + j / 2].
                            let half = (length + 1) / 2
                            let even = p.baseAddress!, odd = p.baseAddress! + half
                            for k in 0..<half { even[k] = u[2 * k] }
                            for k in 0..<(length / 2) { odd[k] = u[2 * k + 1] }
                            if length % 2 == 1 { odd[length / 2] = 0 }
                            for j in 0..<kx {
                                let wj = fx[j], base = (j % 2 == 0 ? even : odd) + j / 2
                                for ox in 0..<ow { dst[ox] += wj * base[ox] }
                            }
                        } else {
                            for j in 0..<kx {
                                let wj = fx[j], base = u.baseAddress! + j
                                for ox in 0..<ow { dst[ox] += wj * base[ox * down] }
                            }
                        }
                    }
                    let o = out + plane * oh * ow
                    for oy in 0..<oh {
                        let dst = o + oy * ow
                        for ox in 0..<ow { dst[ox] = 0 }
                        for e in yo[oy]..<yo[oy + 1] {
                            let weight = fy[Int(yt[e])]
                            let srcRow = t.baseAddress! + Int(yi[e]) * ow
                            for ox in 0..<ow { dst[ox] += weight * srcRow[ox] }
                        }
                    }
                }
            }}}}}}}}
        }
    }

    /// Direct 2-D filtering with `g` [fh, fw] (already flipped and scaled).
    static func direct(_ x: UnsafePointer<Float>, planes: Int, h: Int, w: Int, tx: AxisTaps, ty: AxisTaps,
                       g: [Float], fw: Int, out: UnsafeMutablePointer<Float>) {
        let ow = tx.outputSize, oh = ty.outputSize
        Parallel.forRange(planes, grain: max(1, 4096 / max(1, oh * ow))) { range in
            tx.offsets.withUnsafeBufferPointer { xo in
            tx.inputs.withUnsafeBufferPointer { xi in
            tx.taps.withUnsafeBufferPointer { xt in
            ty.offsets.withUnsafeBufferPointer { yo in
            ty.inputs.withUnsafeBufferPointer { yi in
            ty.taps.withUnsafeBufferPointer { yt in
            g.withUnsafeBufferPointer { f in
                for plane in range {
                    let src = x + plane * h * w
                    let o = out + plane * oh * ow
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var s: Float = 0
                            for ey in yo[oy]..<yo[oy + 1] {
                                let row = src + Int(yi[ey]) * w
                                let frow = f.baseAddress! + Int(yt[ey]) * fw
                                for ex in xo[ox]..<xo[ox + 1] { s += row[Int(xi[ex])] * frow[Int(xt[ex])] }
                            }
                            o[oy * ow + ox] = s
                        }
                    }
                }
            }}}}}}}
        }
    }
}
