// upfirdn2d (StyleGAN2-ADA torch_utils.ops.upfirdn2d, spec ops.md sections 1-2): zero-insert
// upsampling, padding/cropping, FIR filtering (true convolution unless flipFilter), and
// downsampling, per channel. It is linear in x; its gradient is another upfirdn2d with up and
// down swapped, the filter flip negated and the adjoint padding.

/// A prepared FIR filter: 1-D (separable, applied along both axes) or 2-D [fh, fw].
public struct FIRFilter: Sendable, Equatable {
    public let values: [Float]
    public let shape: [Int]
    public var isSeparable: Bool { shape.count == 1 }
    public var width: Int { shape.last! }
    public var height: Int { shape.count == 1 ? shape[0] : shape[0] }

    public init(values: [Float], shape: [Int]) {
        guard (shape.count == 1 || shape.count == 2), values.count == shape.elementCount else {
            shapeFailure("FIR filter shape \(shape) with \(values.count) values")
        }
        self.values = values
        self.shape = shape
    }

    public init(_ tensor: Tensor) { self.init(values: tensor.toArray(), shape: tensor.shape) }

    public var tensor: Tensor { Tensor(values, shape: shape) }

    /// setup_filter: fewer than 8 taps become the 2-D outer product; normalise to sum 1;
    /// optional flip; multiply by gain^(ndim / 2).
    public static func setup(_ taps: [Float] = [1, 3, 3, 1], normalize: Bool = true, flip: Bool = false,
                             gain: Float = 1, separable: Bool? = nil) -> FIRFilter {
        let keepSeparable = separable ?? (taps.count >= 8)
        var values: [Float]
        var shape: [Int]
        if keepSeparable || taps.count == 1 {
            values = taps
            shape = [taps.count]
        } else {
            values = []
            for a in taps { for b in taps { values.append(a * b) } }
            shape = [taps.count, taps.count]
        }
        if normalize {
            let total = values.reduce(0, +)
            values = values.map { $0 / total }
        }
        if flip { values.reverse() }
        let scale = Float(Glibc.pow(Double(gain), Double(shape.count) / 2))
        return FIRFilter(values: values.map { $0 * scale }, shape: shape)
    }

    /// The filter as (taps along y, taps along x) when it is rank one, else nil.
    func factors() -> (y: [Float], x: [Float])? {
        if isSeparable { return (values, values) }
        let fh = shape[0], fw = shape[1]
        var best = 0
        for i in 0..<values.count where Swift.abs(values[i]) > Swift.abs(values[best]) { best = i }
        let pivot = values[best]
        if pivot == 0 { return nil }
        let r = best / fw, c = best % fw
        let xs = (0..<fw).map { values[r * fw + $0] }
        let ys = (0..<fh).map { values[$0 * fw + c] / pivot }
        let tolerance = Swift.abs(pivot) * 1e-7
        for a in 0..<fh {
            for b in 0..<fw where Swift.abs(values[a * fw + b] - ys[a] * xs[b]) > tolerance { return nil }
        }
        return (ys, xs)
    }
}

/// upfirdn2d(x, f, up, down, padding [x0, x1, y0, y1], flipFilter, gain) on x [N, C, H, W].
public func upfirdn2d(_ x: Tensor, _ filter: FIRFilter, up: (x: Int, y: Int) = (1, 1), down: (x: Int, y: Int) = (1, 1),
                      padding: (x0: Int, x1: Int, y0: Int, y1: Int) = (0, 0, 0, 0), flipFilter: Bool = false,
                      gain: Float = 1) -> Tensor {
    guard x.rank == 4 else { shapeFailure("upfirdn2d expects [N, C, H, W], got \(x.shape)") }
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let fh = filter.height, fw = filter.width
    let tx = AxisTaps(inputSize: w, up: up.x, down: down.x, pad0: padding.x0, pad1: padding.x1, taps: fw)
    let ty = AxisTaps(inputSize: h, up: up.y, down: down.y, pad0: padding.y0, pad1: padding.y1, taps: fh)
    let out = Tensor(uninitializedShape: [n, c, ty.outputSize, tx.outputSize])
    // Taps applied as a correlation: the filter reversed unless flipFilter (true convolution).
    if filter.isSeparable {
        let s = Float(Double(gain).squareRoot())
        let g = (flipFilter ? filter.values : filter.values.reversed()).map { $0 * s }
        FIRKernels.separable(x.data, planes: n * c, h: h, w: w, tx: tx, ty: ty, gx: g, gy: g, up: up.x, down: down.x,
                             pad0: padding.x0, pad1: padding.x1, out: out.data)
    } else if let (fy, fx) = filter.factors() {
        let gy = (flipFilter ? fy : fy.reversed()).map { $0 * gain }
        let gx = flipFilter ? fx : fx.reversed()
        FIRKernels.separable(x.data, planes: n * c, h: h, w: w, tx: tx, ty: ty, gx: gx, gy: gy, up: up.x, down: down.x,
                             pad0: padding.x0, pad1: padding.x1, out: out.data)
    } else {
        var g = filter.values.map { $0 * gain }
        if !flipFilter { g.reverse() }  // reversing the flat array flips both axes
        FIRKernels.direct(x.data, planes: n * c, h: h, w: w, tx: tx, ty: ty, g: g, fw: fw, out: out.data)
    }
    return out.recorded("upfirdn2d", [x]) { gy, _ in
        let p0x = fw - padding.x0 - 1, p1x = w * up.x - tx.outputSize * down.x + padding.x0 - up.x + 1
        let p0y = fh - padding.y0 - 1, p1y = h * up.y - ty.outputSize * down.y + padding.y0 - up.y + 1
        return [upfirdn2d(gy, filter, up: down, down: up, padding: (p0x, p1x, p0y, p1y), flipFilter: !flipFilter, gain: gain)]
    }
}

/// filter2d: same-size filtering (padding added so the output keeps the input size).
public func filter2d(_ x: Tensor, _ f: FIRFilter, padding: Int = 0, flipFilter: Bool = false, gain: Float = 1) -> Tensor {
    let fw = f.width, fh = f.height
    return upfirdn2d(x, f, padding: (padding + fw / 2, padding + (fw - 1) / 2, padding + fh / 2, padding + (fh - 1) / 2),
                     flipFilter: flipFilter, gain: gain)
}

/// upsample2d: factor-2 (by default) upsampling with the filter, gain up^2.
public func upsample2d(_ x: Tensor, _ f: FIRFilter, up: Int = 2, padding: Int = 0, flipFilter: Bool = false, gain: Float = 1) -> Tensor {
    let fw = f.width, fh = f.height
    return upfirdn2d(x, f, up: (up, up),
                     padding: (padding + (fw + up - 1) / 2, padding + (fw - up) / 2, padding + (fh + up - 1) / 2, padding + (fh - up) / 2),
                     flipFilter: flipFilter, gain: gain * Float(up * up))
}

/// downsample2d: filter then keep every `down`-th pixel.
public func downsample2d(_ x: Tensor, _ f: FIRFilter, down: Int = 2, padding: Int = 0, flipFilter: Bool = false, gain: Float = 1) -> Tensor {
    let fw = f.width, fh = f.height
    return upfirdn2d(x, f, down: (down, down),
                     padding: (padding + (fw - down + 1) / 2, padding + (fw - down) / 2, padding + (fh - down + 1) / 2, padding + (fh - down) / 2),
                     flipFilter: flipFilter, gain: gain)
}

#if canImport(Glibc)
import Glibc
#endif
