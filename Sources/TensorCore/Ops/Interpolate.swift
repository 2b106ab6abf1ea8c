// F.interpolate for 4-D tensors: bilinear (align_corners=False) with or without antialiasing
// and nearest, as separable resampling with per-axis weight tables. Resampling is linear; its
// gradient resamples with the transposed tables (and vice versa).
#if canImport(Glibc)
import Glibc
#endif

/// For one axis: per output index, the input indices and weights it combines.
public struct ResampleTable: Sendable {
    public let inputSize: Int
    public let outputSize: Int
    /// Taps of output `o`: entries `offsets[o] ..< offsets[o + 1]` of `indices` / `weights`.
    public let offsets: [Int]
    public let indices: [Int32]
    public let weights: [Float]

    public init(inputSize: Int, outputSize: Int, entries: [[(Int, Float)]]) {
        self.inputSize = inputSize
        self.outputSize = outputSize
        var offsets = [0], indices: [Int32] = [], weights: [Float] = []
        for list in entries {
            for (i, w) in list {
                indices.append(Int32(i))
                weights.append(w)
            }
            offsets.append(indices.count)
        }
        self.offsets = offsets
        self.indices = indices
        self.weights = weights
    }

    /// The adjoint table (maps the output axis back to the input axis).
    public func transposed() -> ResampleTable {
        var entries = [[(Int, Float)]](repeating: [], count: inputSize)
        for o in 0..<outputSize {
            for e in offsets[o]..<offsets[o + 1] { entries[Int(indices[e])].append((o, weights[e])) }
        }
        return ResampleTable(inputSize: outputSize, outputSize: inputSize, entries: entries)
    }

    /// PyTorch bilinear, align_corners=False, no antialiasing.
    public static func bilinear(_ n: Int, _ m: Int) -> ResampleTable {
        let scale = Float(n) / Float(m)
        var entries: [[(Int, Float)]] = []
        for o in 0..<m {
            var src = (Float(o) + 0.5) * scale - 0.5
            if src < 0 { src = 0 }
            let i0 = Int(src)
            let i1 = i0 < n - 1 ? i0 + 1 : i0
            let l1 = src - Float(i0), l0 = 1 - l1
            entries.append(i1 == i0 ? [(i0, l0 + l1)] : [(i0, l0), (i1, l1)])
        }
        return ResampleTable(inputSize: n, outputSize: m, entries: entries)
    }

    /// PyTorch bilinear with antialias=True (triangle filter widened by the downscale factor).
    public static func bilinearAntialiased(_ n: Int, _ m: Int) -> ResampleTable {
        let scale = Double(n) / Double(m)
        let support = scale >= 1 ? scale : 1.0
        let invScale = scale >= 1 ? 1 / scale : 1.0
        var entries: [[(Int, Float)]] = []
        for o in 0..<m {
            let center = scale * (Double(o) + 0.5)
            let xmin = max(Int(center - support + 0.5), 0)
            let xsize = min(Int(center + support + 0.5), n) - xmin
            var ws: [Double] = []
            var total = 0.0
            for j in 0..<max(xsize, 0) {
                let x = (Double(j + xmin) - center + 0.5) * invScale
                let w = x < 0 ? (x > -1 ? 1 + x : 0) : (x < 1 ? 1 - x : 0)
                ws.append(w)
                total += w
            }
            entries.append(ws.enumerated().map { (xmin + $0.offset, Float(total != 0 ? $0.element / total : $0.element)) })
        }
        return ResampleTable(inputSize: n, outputSize: m, entries: entries)
    }

    /// PyTorch 'nearest': input index floor(o * n / m).
    public static func nearest(_ n: Int, _ m: Int) -> ResampleTable {
        let scale = Float(n) / Float(m)
        return ResampleTable(inputSize: n, outputSize: m, entries: (0..<m).map { [(min(Int((Float($0) * scale).rounded(.down)), n - 1), 1)] })
    }
}

/// Applies separable tables along the last two dimensions (x first, then y).
func resample(_ x: Tensor, _ ty: ResampleTable, _ tx: ResampleTable) -> Tensor {
    let h = x.shape[x.rank - 2], w = x.shape[x.rank - 1]
    guard h == ty.inputSize, w == tx.inputSize else { shapeFailure("resample tables for \(ty.inputSize)x\(tx.inputSize), input \(x.shape)") }
    let oh = ty.outputSize, ow = tx.outputSize
    let planes = x.count / max(h * w, 1)
    let out = Tensor(uninitializedShape: Array(x.shape.dropLast(2)) + [oh, ow])
    let src = x.data, dst = out.data
    Parallel.forRange(planes, grain: max(1, 2048 / max(oh * ow, 1))) { range in
        var tmp = [Float](repeating: 0, count: h * ow)
        tmp.withUnsafeMutableBufferPointer { t in
            for plane in range {
                let s = src + plane * h * w
                for iy in 0..<h {
                    for ox in 0..<ow {
                        var acc: Float = 0
                        for e in tx.offsets[ox]..<tx.offsets[ox + 1] { acc += tx.weights[e] * s[iy * w + Int(tx.indices[e])] }
                        t[iy * ow + ox] = acc
                    }
                }
                let d = dst + plane * oh * ow
                for oy in 0..<oh {
                    let row = d + oy * ow
                    row.update(repeating: 0, count: ow)
                    for e in ty.offsets[oy]..<ty.offsets[oy + 1] {
                        let wgt = ty.weights[e], srcRow = t.baseAddress! + Int(ty.indices[e]) * ow
                        for ox in 0..<ow { row[ox] += wgt * srcRow[ox] }
                    }
                }
            }
        }
    }
    return out.recorded("resample", [x]) { g, _ in [resample(g, ty.transposed(), tx.transposed())] }
}

public enum InterpolationMode: Sendable { case bilinear, nearest }

extension Tensor {
    /// F.interpolate(x, size, mode, align_corners=False, antialias) for [N, C, H, W].
    public func interpolate(size: (Int, Int), mode: InterpolationMode = .bilinear, antialias: Bool = false) -> Tensor {
        guard rank == 4 else { shapeFailure("interpolate expects [N, C, H, W], got \(shape)") }
        let (h, w) = (shape[2], shape[3])
        let ty: ResampleTable, tx: ResampleTable
        switch (mode, antialias) {
        case (.nearest, _):
            ty = .nearest(h, size.0); tx = .nearest(w, size.1)
        case (.bilinear, false):
            ty = .bilinear(h, size.0); tx = .bilinear(w, size.1)
        case (.bilinear, true):
            ty = .bilinearAntialiased(h, size.0); tx = .bilinearAntialiased(w, size.1)
        }
        return resample(self, ty, tx)
    }
}
