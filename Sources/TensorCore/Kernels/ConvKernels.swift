// 2-D convolution kernels on sgemm (the reference path; ConvBackend may hand the forward pass
// and the input gradient to oneDNN first): im2col / col2im with contiguous-run copies,
// direct GEMM for 1x1 stride-1 convolutions, and batching of several images into one GEMM
// when the output maps are small (deep ResNet layers) so that GEMMs stay large.
//
// Conventions: input x [N, C, H, W], weight w [O, C/groups, kh, kw], output y [N, O, OH, OW],
// correlation (PyTorch conv2d), symmetric zero padding, stride, no dilation.
import CConvShim
import LinearAlgebra

/// Geometry of one convolution.
public struct ConvGeometry: Equatable, Sendable {
    public var n, c, h, w: Int
    public var o, kh, kw: Int
    public var groups: Int
    public var strideH, strideW: Int
    public var padH, padW: Int
    /// The kernels of this convolution's forward pass and input gradient, fixed when the
    /// geometry is made (at the forward pass), so the gradients run on the same ones.
    public var backend: ConvBackend

    public init(input: [Int], weight: [Int], stride: (Int, Int), padding: (Int, Int), groups: Int) {
        guard input.count == 4, weight.count == 4 else { shapeFailure("conv2d expects 4-D input and weight, got \(input) and \(weight)") }
        n = input[0]; c = input[1]; h = input[2]; w = input[3]
        o = weight[0]; kh = weight[2]; kw = weight[3]
        self.groups = groups
        (strideH, strideW) = stride
        (padH, padW) = padding
        backend = ConvBackend.current
        guard groups >= 1, c % groups == 0, o % groups == 0, weight[1] == c / groups else {
            shapeFailure("conv2d: input \(input) and weight \(weight) do not match with groups \(groups)")
        }
        guard strideH >= 1, strideW >= 1, padH >= 0, padW >= 0 else { shapeFailure("conv2d: invalid stride/padding") }
        guard oh >= 1, ow >= 1 else { shapeFailure("conv2d: input \(input) too small for kernel \(kh)x\(kw) with padding \(padding)") }
    }

    public var oh: Int { (h + 2 * padH - kh) / strideH + 1 }
    public var ow: Int { (w + 2 * padW - kw) / strideW + 1 }
    public var inputShape: [Int] { [n, c, h, w] }
    public var weightShape: [Int] { [o, c / groups, kh, kw] }
    public var outputShape: [Int] { [n, o, oh, ow] }
    var cg: Int { c / groups }
    var og: Int { o / groups }
    /// Rows of the im2col matrix per group.
    var k: Int { cg * kh * kw }
    /// Output pixels per image.
    var p: Int { oh * ow }
    var isPointwise: Bool { kh == 1 && kw == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0 }

    /// Multiply-adds of the forward pass.
    public var macs: Int { n * o * p * k }

    /// Images per GEMM: enough columns for an efficient GEMM, bounded scratch memory.
    /// Split strategy: a GEMM is [og x k] x [k x (nb * p)]. OpenBLAS reaches most of its peak
    /// only with a few thousand columns, so images whose maps have fewer than `target` pixels
    /// (ResNet layer3/4, the 4x4..16x16 StyleGAN blocks) are unfolded side by side until the
    /// chunk has about 1536 columns (measured on this machine: larger chunks gained nothing,
    /// smaller ones lost up to 30% on 7x7 maps); the unfolded chunk is capped at 16 Mi floats
    /// (64 MB) so that a wide 3x3 layer never allocates more than that for its im2col matrix.
    var imagesPerChunk: Int {
        let target = 1536
        if p >= target { return 1 }
        var nb = min(n, (target + p - 1) / p)
        while nb > 1 && k * nb * p > (16 << 20) { nb -= 1 }
        return max(1, nb)
    }
}

/// A scratch buffer from the pool, returned when it goes out of scope.
final class Scratch {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    let capacity: Int
    init(_ count: Int) {
        self.count = count
        (pointer, capacity) = BufferPool.shared.acquire(count)
    }
    deinit { BufferPool.shared.release(pointer, capacity: capacity) }
}

/// Floor division (Swift's `/` truncates toward zero).
@inline(__always) func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

enum ConvKernels {
    /// True when output pixel i reads input pixel i + offset (stride 1, "same" size), so a
    /// kernel tap is one contiguous copy plus zeroed border columns.
    static func isShiftedCopy(_ g: ConvGeometry, rows: Range<Int>) -> Bool {
        g.strideH == 1 && g.strideW == 1 && g.oh == g.h && g.ow == g.w && rows == 0..<g.oh
    }

    /// Output columns whose tap `kj` reads inside the image: 0 <= ox * sw - pw + kj < w.
    @inline(__always) static func validColumns(_ g: ConvGeometry, kj: Int) -> (Int, Int) {
        let (w, sw, pw, ow) = (g.w, g.strideW, g.padW, g.ow)
        let start = kj >= pw ? 0 : (pw - kj + sw - 1) / sw
        return (start, max(start, min(ow, floorDiv(w - 1 + pw - kj, sw) + 1)))
    }

    /// Zeroes the columns of one shifted-copy row whose tap `kj` lies outside the image.
    @inline(__always) static func zeroWrappedColumns(_ row: UnsafeMutablePointer<Float>, _ g: ConvGeometry, kj: Int) {
        let (h, w, pw) = (g.h, g.w, g.padW)
        let left = min(w, max(0, pw - kj)), right = max(left, min(w, w - (kj - pw)))
        for oy in 0..<h {
            let r = row + oy * w
            for ox in 0..<left { r[ox] = 0 }
            for ox in right..<w { r[ox] = 0 }
        }
    }

    /// Unfolds channels `0..<cg` of `count` images (`x` points at the group's first channel of
    /// the first image, images `imageStride` apart) into rows of `cols` (row stride `ld`);
    /// image j fills columns `j * rows.count * ow ..< (j + 1) * rows.count * ow`.
    static func im2col(_ x: UnsafePointer<Float>, imageStride: Int, count: Int, _ g: ConvGeometry,
                       _ cols: UnsafeMutablePointer<Float>, ld: Int, rows: Range<Int>) {
        let (h, w, kh, kw, ow) = (g.h, g.w, g.kh, g.kw, g.ow)
        let (sh, sw, ph, pw) = (g.strideH, g.strideW, g.padH, g.padW)
        let tp = rows.count * ow
        let shifted = isShiftedCopy(g, rows: rows)
        Parallel.forRange(count * g.cg, grain: max(1, 16384 / max(1, kh * kw * tp))) { items in
            for item in items {
                let j = item / g.cg, c = item % g.cg
                let plane = x + j * imageStride + c * h * w
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let row = cols + ((c * kh + ki) * kw + kj) * ld + j * tp
                        if shifted {
                            let offset = (ki - ph) * w + (kj - pw)
                            let lo = min(tp, max(0, -offset)), hi = max(lo, min(tp, h * w - offset))
                            row.update(repeating: 0, count: lo)
                            (row + lo).update(from: plane + lo + offset, count: hi - lo)
                            (row + hi).update(repeating: 0, count: tp - hi)
                            // Columns whose tap falls left or right of the image wrapped to a neighbouring row.
                            zeroWrappedColumns(row, g, kj: kj)
                            continue
                        }
                        let (oxStart, oxEnd) = validColumns(g, kj: kj)
                        for oy in rows {
                            let dst = row + (oy - rows.lowerBound) * ow
                            let iy = oy * sh - ph + ki
                            if iy < 0 || iy >= h {
                                for ox in 0..<ow { dst[ox] = 0 }
                                continue
                            }
                            for ox in 0..<oxStart { dst[ox] = 0 }
                            for ox in oxEnd..<ow { dst[ox] = 0 }
                            let src = plane + iy * w - pw + kj
                            if sw == 1 {
                                for ox in oxStart..<oxEnd { dst[ox] = src[ox] }
                            } else {
                                for ox in oxStart..<oxEnd { dst[ox] = src[ox * sw] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Folds `cols` back, adding into the channels of `count` images (layout as in `im2col`;
    /// `gx` must be initialised). The columns are scratch: the shifted-copy path zeroes the
    /// entries that fall outside the image before adding whole runs.
    static func col2im(_ cols: UnsafeMutablePointer<Float>, ld: Int, rows: Range<Int>, _ g: ConvGeometry,
                       _ gx: UnsafeMutablePointer<Float>, imageStride: Int, count: Int) {
        let (h, w, kh, kw, ow) = (g.h, g.w, g.kh, g.kw, g.ow)
        let (sh, sw, ph, pw) = (g.strideH, g.strideW, g.padH, g.padW)
        let tp = rows.count * ow
        let shifted = isShiftedCopy(g, rows: rows)
        Parallel.forRange(count * g.cg, grain: max(1, 16384 / max(1, kh * kw * tp))) { items in
            for item in items {
                let j = item / g.cg, c = item % g.cg
                let plane = gx + j * imageStride + c * h * w
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let row = cols + ((c * kh + ki) * kw + kj) * ld + j * tp
                        if shifted {
                            let offset = (ki - ph) * w + (kj - pw)
                            let lo = min(tp, max(0, -offset)), hi = max(lo, min(tp, h * w - offset))
                            zeroWrappedColumns(row, g, kj: kj)
                            let dst = plane + offset
                            for i in lo..<hi { dst[i] += row[i] }
                            continue
                        }
                        let (oxStart, oxEnd) = validColumns(g, kj: kj)
                        for oy in rows {
                            let iy = oy * sh - ph + ki
                            if iy < 0 || iy >= h { continue }
                            let src = row + (oy - rows.lowerBound) * ow
                            let dst = plane + iy * w - pw + kj
                            if sw == 1 {
                                for ox in oxStart..<oxEnd { dst[ox] += src[ox] }
                            } else {
                                for ox in oxStart..<oxEnd { dst[ox * sw] += src[ox] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Copies the group-`group` output channels of images `n0 ..< n0 + nb` between the NCHW
    /// tensor and a [og, nb * p] matrix.
    static func gatherChunk(_ t: UnsafePointer<Float>, _ g: ConvGeometry, n0: Int, nb: Int, group: Int, into m: UnsafeMutablePointer<Float>) {
        let (og, p) = (g.og, g.p)
        Parallel.forRange(og * nb, grain: max(1, 8192 / p)) { r in
            for idx in r {
                let oc = idx / nb, j = idx % nb
                (m + oc * nb * p + j * p).update(from: t + ((n0 + j) * g.o + group * og + oc) * p, count: p)
            }
        }
    }

    static func scatterChunk(_ m: UnsafePointer<Float>, _ g: ConvGeometry, n0: Int, nb: Int, group: Int, into t: UnsafeMutablePointer<Float>) {
        let (og, p) = (g.og, g.p)
        Parallel.forRange(og * nb, grain: max(1, 8192 / p)) { r in
            for idx in r {
                let oc = idx / nb, j = idx % nb
                (t + ((n0 + j) * g.o + group * og + oc) * p).update(from: m + oc * nb * p + j * p, count: p)
            }
        }
    }

    /// Same for input-side [cg, nb * h*w] matrices (pointwise convolutions).
    static func gatherInputChunk(_ t: UnsafePointer<Float>, _ g: ConvGeometry, n0: Int, nb: Int, group: Int, into m: UnsafeMutablePointer<Float>) {
        let (cg, hw) = (g.cg, g.h * g.w)
        Parallel.forRange(cg * nb, grain: max(1, 8192 / hw)) { r in
            for idx in r {
                let c = idx / nb, j = idx % nb
                (m + c * nb * hw + j * hw).update(from: t + ((n0 + j) * g.c + group * cg + c) * hw, count: hw)
            }
        }
    }

    static func scatterInputChunk(_ m: UnsafePointer<Float>, _ g: ConvGeometry, n0: Int, nb: Int, group: Int, into t: UnsafeMutablePointer<Float>) {
        let (cg, hw) = (g.cg, g.h * g.w)
        Parallel.forRange(cg * nb, grain: max(1, 8192 / hw)) { r in
            for idx in r {
                let c = idx / nb, j = idx % nb
                (t + ((n0 + j) * g.c + group * cg + c) * hw).update(from: m + c * nb * hw + j * hw, count: hw)
            }
        }
    }

    /// Units of work: `count` images and a range of output rows (whole maps when several
    /// images are batched; row bands when one image's unfolded matrix would not fit in cache).
    struct Tile {
        var n0: Int
        var count: Int
        var rows: Range<Int>
    }

    static func tiles(_ g: ConvGeometry) -> [Tile] {
        let nb = g.imagesPerChunk
        var result: [Tile] = []
        if nb > 1 || g.k * g.p <= (2 << 20) {
            var n0 = 0
            while n0 < g.n {
                let cnt = min(nb, g.n - n0)
                result.append(Tile(n0: n0, count: cnt, rows: 0..<g.oh))
                n0 += cnt
            }
            return result
        }
        let band = max(1, (2 << 20) / (g.k * g.ow))
        for n in 0..<g.n {
            var r = 0
            while r < g.oh {
                result.append(Tile(n0: n, count: 1, rows: r..<min(g.oh, r + band)))
                r += band
            }
        }
        return result
    }

    /// y = conv(x, w). `y` is overwritten.
    static func forward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        if ConvBackend.run(Int32(VCONV_FORWARD), g, input: x, weight: w, output: y) { return }
        let (og, k, p, hw, ow) = (g.og, g.k, g.p, g.h * g.w, g.ow)
        let nb = g.imagesPerChunk
        if g.isPointwise {
            if nb == 1 {
                for n in 0..<g.n {
                    for gr in 0..<g.groups {
                        BLAS.sgemm(transposeA: false, transposeB: false, m: og, n: p, k: k, a: w + gr * og * k, lda: k,
                                   b: x + (n * g.c + gr * g.cg) * hw, ldb: hw, c: y + (n * g.o + gr * og) * p, ldc: p)
                    }
                }
                return
            }
            let xm = Scratch(k * nb * p), ym = Scratch(og * nb * p)
            for t in tiles(g) {
                for gr in 0..<g.groups {
                    gatherInputChunk(x, g, n0: t.n0, nb: t.count, group: gr, into: xm.pointer)
                    BLAS.sgemm(transposeA: false, transposeB: false, m: og, n: t.count * p, k: k, a: w + gr * og * k, lda: k,
                               b: xm.pointer, ldb: t.count * p, c: ym.pointer, ldc: t.count * p)
                    scatterChunk(ym.pointer, g, n0: t.n0, nb: t.count, group: gr, into: y)
                }
            }
            return
        }
        let all = tiles(g)
        let maxColumns = all.map { $0.count * $0.rows.count * ow }.max() ?? 0
        let cols = Scratch(k * maxColumns)
        let ym = nb > 1 ? Scratch(og * nb * p) : nil
        for t in all {
            let tp = t.rows.count * ow, columns = t.count * tp
            for gr in 0..<g.groups {
                im2col(x + (t.n0 * g.c + gr * g.cg) * hw, imageStride: g.c * hw, count: t.count, g, cols.pointer,
                       ld: columns, rows: t.rows)
                if t.count == 1 {
                    BLAS.sgemm(transposeA: false, transposeB: false, m: og, n: tp, k: k, a: w + gr * og * k, lda: k,
                               b: cols.pointer, ldb: tp, c: y + (t.n0 * g.o + gr * og) * p + t.rows.lowerBound * ow, ldc: p)
                } else {
                    BLAS.sgemm(transposeA: false, transposeB: false, m: og, n: columns, k: k, a: w + gr * og * k, lda: k,
                               b: cols.pointer, ldb: columns, c: ym!.pointer, ldc: columns)
                    scatterChunk(ym!.pointer, g, n0: t.n0, nb: t.count, group: gr, into: y)
                }
            }
        }
    }

    /// gx = conv^T(gy, w) (the input gradient / transposed convolution). `gx` is overwritten.
    static func inputGrad(gy: UnsafePointer<Float>, w: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        if ConvBackend.run(Int32(VCONV_BACKWARD_DATA), g, input: gy, weight: w, output: gx) { return }
        let (og, k, p, hw, ow) = (g.og, g.k, g.p, g.h * g.w, g.ow)
        let nb = g.imagesPerChunk
        if g.isPointwise {
            if nb == 1 {
                for n in 0..<g.n {
                    for gr in 0..<g.groups {
                        BLAS.sgemm(transposeA: true, transposeB: false, m: k, n: p, k: og, a: w + gr * og * k, lda: k,
                                   b: gy + (n * g.o + gr * og) * p, ldb: p, c: gx + (n * g.c + gr * g.cg) * hw, ldc: hw)
                    }
                }
                return
            }
            let ym = Scratch(og * nb * p), xm = Scratch(k * nb * p)
            for t in tiles(g) {
                for gr in 0..<g.groups {
                    gatherChunk(gy, g, n0: t.n0, nb: t.count, group: gr, into: ym.pointer)
                    BLAS.sgemm(transposeA: true, transposeB: false, m: k, n: t.count * p, k: og, a: w + gr * og * k, lda: k,
                               b: ym.pointer, ldb: t.count * p, c: xm.pointer, ldc: t.count * p)
                    scatterInputChunk(xm.pointer, g, n0: t.n0, nb: t.count, group: gr, into: gx)
                }
            }
            return
        }
        Parallel.forRange(g.n * g.c * hw, grain: 1 << 16) { r in (gx + r.lowerBound).update(repeating: 0, count: r.count) }
        let all = tiles(g)
        let maxColumns = all.map { $0.count * $0.rows.count * ow }.max() ?? 0
        let cols = Scratch(k * maxColumns)
        let ym = nb > 1 ? Scratch(og * nb * p) : nil
        for t in all {
            let tp = t.rows.count * ow, columns = t.count * tp
            for gr in 0..<g.groups {
                if t.count == 1 {
                    BLAS.sgemm(transposeA: true, transposeB: false, m: k, n: tp, k: og, a: w + gr * og * k, lda: k,
                               b: gy + (t.n0 * g.o + gr * og) * p + t.rows.lowerBound * ow, ldb: p, c: cols.pointer, ldc: tp)
                } else {
                    gatherChunk(gy, g, n0: t.n0, nb: t.count, group: gr, into: ym!.pointer)
                    BLAS.sgemm(transposeA: true, transposeB: false, m: k, n: columns, k: og, a: w + gr * og * k, lda: k,
                               b: ym!.pointer, ldb: columns, c: cols.pointer, ldc: columns)
                }
                col2im(cols.pointer, ld: columns, rows: t.rows, g, gx + (t.n0 * g.c + gr * g.cg) * hw,
                       imageStride: g.c * hw, count: t.count)
            }
        }
    }

    /// gw = sum over the batch of gy (x) im2col(x)^T. `gw` is overwritten.
    static func weightGrad(x: UnsafePointer<Float>, gy: UnsafePointer<Float>, gw: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        let (og, k, p, hw, ow) = (g.og, g.k, g.p, g.h * g.w, g.ow)
        let nb = g.imagesPerChunk
        let all = tiles(g)
        let maxColumns = all.map { $0.count * $0.rows.count * ow }.max() ?? 0
        let cols = g.isPointwise ? nil : Scratch(k * maxColumns)
        let xm = g.isPointwise && nb > 1 ? Scratch(k * nb * p) : nil
        let ym = nb > 1 ? Scratch(og * nb * p) : nil
        for (index, t) in all.enumerated() {
            let tp = t.rows.count * ow, columns = t.count * tp
            let beta: Float = index == 0 ? 0 : 1
            for gr in 0..<g.groups {
                let a: UnsafePointer<Float>, lda: Int
                if t.count == 1 {
                    a = gy + (t.n0 * g.o + gr * og) * p + t.rows.lowerBound * ow
                    lda = p
                } else {
                    gatherChunk(gy, g, n0: t.n0, nb: t.count, group: gr, into: ym!.pointer)
                    a = UnsafePointer(ym!.pointer)
                    lda = columns
                }
                let b: UnsafePointer<Float>, ldb: Int
                if g.isPointwise {
                    if t.count == 1 {
                        b = x + (t.n0 * g.c + gr * g.cg) * hw
                        ldb = hw
                    } else {
                        gatherInputChunk(x, g, n0: t.n0, nb: t.count, group: gr, into: xm!.pointer)
                        b = UnsafePointer(xm!.pointer)
                        ldb = columns
                    }
                } else {
                    im2col(x + (t.n0 * g.c + gr * g.cg) * hw, imageStride: g.c * hw, count: t.count, g, cols!.pointer,
                           ld: columns, rows: t.rows)
                    b = UnsafePointer(cols!.pointer)
                    ldb = columns
                }
                BLAS.sgemm(transposeA: false, transposeB: true, m: og, n: k, k: columns, a: a, lda: lda,
                           b: b, ldb: ldb, beta: beta, c: gw + gr * og * k, ldc: k)
            }
        }
    }
}
