// The ADA augmentation pipeline (stylegan2-ada training/augment.py, spec augment.md): pixel
// blitting and general geometric transforms composed into one inverse matrix per sample and
// executed by reflect padding, 2x upsampling with the sym6 filter, grid_sample and
// downsampling; colour transforms as one 4x4 matrix per sample; image-space filtering with a
// per-sample filter from the 4-band filter bank; additive noise; cutout. Every step is built
// from differentiable tensor ops, so gradients (and the second-order gradients of R1) pass
// through it to the image; the random parameters get none. Random parameters are drawn per
// sample from our counter-based generator; `debugPercentile` replaces each by a function of q
// as the reference's debug mode (tests). Matrices are composed in float32 as the reference.
import Common
import NN
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// The transforms' probability multipliers and strengths (augment.md 1).
public struct AugmentSettings: Codable, Equatable, Sendable {
    public var xflip: Float = 0, rotate90: Float = 0, xint: Float = 0, xintMax: Float = 0.125
    public var scale: Float = 0, rotate: Float = 0, aniso: Float = 0, xfrac: Float = 0
    public var scaleStd: Float = 0.2, rotateMax: Float = 1, anisoStd: Float = 0.2, xfracStd: Float = 0.125
    public var brightness: Float = 0, contrast: Float = 0, lumaflip: Float = 0, hue: Float = 0, saturation: Float = 0
    public var brightnessStd: Float = 0.2, contrastStd: Float = 0.5, hueMax: Float = 1, saturationStd: Float = 1
    public var imgfilter: Float = 0, imgfilterBands: [Float] = [1, 1, 1, 1], imgfilterStd: Float = 1
    public var noise: Float = 0, cutout: Float = 0, noiseStd: Float = 0.1, cutoutSize: Float = 0.5

    public init() {}

    var geometric: Bool { xflip > 0 || rotate90 > 0 || xint > 0 || scale > 0 || rotate > 0 || aniso > 0 || xfrac > 0 }
    var colour: Bool { brightness > 0 || contrast > 0 || lumaflip > 0 || hue > 0 || saturation > 0 }
}

/// `--augpipe`: the presets of train.py.
public enum AugmentPreset: String, ConfigurationChoice {
    case blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc

    public var settings: AugmentSettings {
        var s = AugmentSettings()
        func blit() { (s.xflip, s.rotate90, s.xint) = (1, 1, 1) }
        func geom() { (s.scale, s.rotate, s.aniso, s.xfrac) = (1, 1, 1, 1) }
        func color() { (s.brightness, s.contrast, s.lumaflip, s.hue, s.saturation) = (1, 1, 1, 1, 1) }
        switch self {
        case .blit: blit()
        case .geom: geom()
        case .color: color()
        case .filter: s.imgfilter = 1
        case .noise: s.noise = 1
        case .cutout: s.cutout = 1
        case .bg: blit(); geom()
        case .bgc: blit(); geom(); color()
        case .bgcf: blit(); geom(); color(); s.imgfilter = 1
        case .bgcfn: blit(); geom(); color(); s.imgfilter = 1; s.noise = 1
        case .bgcfnc: blit(); geom(); color(); s.imgfilter = 1; s.noise = 1; s.cutout = 1
        }
        return s
    }
}

/// Row-major 3x3 / 4x4 float32 matrices, one per sample.
struct Matrices {
    let size: Int
    var values: [[Float]]

    init(identity size: Int, count: Int) {
        self.size = size
        var eye = [Float](repeating: 0, count: size * size)
        for i in 0..<size { eye[i * size + i] = 1 }
        values = [[Float]](repeating: eye, count: count)
    }

    static func product(_ a: [Float], _ b: [Float], _ n: Int) -> [Float] {
        var out = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                var s: Float = 0
                for k in 0..<n { s += a[i * n + k] * b[k * n + j] }
                out[i * n + j] = s
            }
        }
        return out
    }

    /// self <- self @ m(i) for every sample i.
    mutating func append(_ m: (Int) -> [Float]) { for i in values.indices { values[i] = Self.product(values[i], m(i), size) } }
    /// self <- m(i) @ self.
    mutating func prepend(_ m: (Int) -> [Float]) { for i in values.indices { values[i] = Self.product(m(i), values[i], size) } }

    var isIdentity: Bool { values.allSatisfy { $0 == Matrices(identity: size, count: 1).values[0] } }
    var tensor: Tensor { Tensor(values.flatMap { $0 }, shape: [values.count, size, size]) }
}

func translate2d(_ tx: Float, _ ty: Float) -> [Float] { [1, 0, tx, 0, 1, ty, 0, 0, 1] }
func scale2d(_ sx: Float, _ sy: Float) -> [Float] { [sx, 0, 0, 0, sy, 0, 0, 0, 1] }
func rotate2d(_ t: Float) -> [Float] { [cosf(t), sinf(-t), 0, sinf(t), cosf(t), 0, 0, 0, 1] }
func translate3d(_ tx: Float, _ ty: Float, _ tz: Float) -> [Float] { [1, 0, 0, tx, 0, 1, 0, ty, 0, 0, 1, tz, 0, 0, 0, 1] }
func scale3d(_ sx: Float, _ sy: Float, _ sz: Float) -> [Float] { [sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, sz, 0, 0, 0, 0, 1] }
/// Rodrigues rotation about the unit axis v (4th row and column identity).
func rotate3d(_ v: [Float], _ t: Float) -> [Float] {
    let (vx, vy, vz) = (v[0], v[1], v[2])
    let s = sinf(t), c = cosf(t), cc = 1 - c
    return [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0,
            vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0,
            vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0,
            0, 0, 0, 1]
}

/// Inverse error function in Double (Giles' approximation refined by two Newton steps on erf).
public func erfinv(_ y: Double) -> Double {
    if y <= -1 { return -.infinity }
    if y >= 1 { return .infinity }
    var w = -Glibc.log((1 - y) * (1 + y)), x: Double
    if w < 5 {
        w -= 2.5
        var p = 2.81022636e-08
        for c in [3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941] { p = c + p * w }
        x = p * y
    } else {
        w = w.squareRoot() - 3
        var p = -0.000200214257
        for c in [0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682] { p = c + p * w }
        x = p * y
    }
    for _ in 0..<2 { x -= (Glibc.erf(x) - y) / (2 / Double.pi.squareRoot() * Glibc.exp(-x * x)) }
    return x
}

/// The float32 erfinv of a float32 argument (as torch computes the debug parameters).
func erfinvF(_ y: Float) -> Float { Float(erfinv(Double(y))) }

/// Diagnostics of one call (the golden cases compare them).
public struct AugmentDiagnostics {
    public var gInv: Tensor? = nil
    public var theta: Tensor? = nil
    public var colour: Tensor? = nil
    public var imgfilterGain: Tensor? = nil
    public var imgfilterTaps: Tensor? = nil
    public var noiseSigma: Tensor? = nil
    public var cutoutMask: Tensor? = nil
    public init() {}
}

public final class AugmentPipe: Module {
    public var settings: AugmentSettings
    /// The overall probability multiplier (buffer `p`; adapted by ADA).
    public let pBuffer: Tensor
    public let hzGeom: Tensor
    public let hzFbank: Tensor
    let geomFilter: FIRFilter

    public init(_ settings: AugmentSettings, p: Float = 0) {
        self.settings = settings
        pBuffer = Tensor(scalar: p)
        let sym6: [Double] = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
                              0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
                              -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]
        geomFilter = FIRFilter.setup(sym6.map { Float($0) })
        hzGeom = geomFilter.tensor
        hzFbank = Tensor(Self.filterBank().map { Float($0) }, shape: [4, 43])
        super.init()
        buffer("p", pBuffer)
        buffer("Hz_geom", hzGeom)
        buffer("Hz_fbank", hzFbank)
    }

    public var p: Float {
        get { pBuffer.data[0] }
        set { pBuffer.data[0] = newValue }
    }

    /// The 4-band filter bank of augment.md 1 (Float64, as NumPy/SciPy build it).
    static func filterBank() -> [Double] {
        let lo: [Double] = [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025]
        let hi = lo.enumerated().map { $0.offset % 2 == 0 ? $0.element : -$0.element }
        func convolveFull(_ a: [Double], _ b: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: a.count + b.count - 1)
            for i in a.indices { for j in b.indices { out[i + j] += a[i] * b[j] } }
            return out
        }
        let lo2 = convolveFull(lo, lo.reversed()).map { $0 / 2 }, hi2 = convolveFull(hi, hi.reversed()).map { $0 / 2 }
        var bank: [[Double]] = [[1], [0], [0], [0]]
        for i in 1..<4 {
            bank = bank.map { row in
                var up: [Double] = []
                for (k, v) in row.enumerated() { up.append(v); if k < row.count - 1 { up.append(0) } }
                return convolveFull(up, lo2)
            }
            let length = bank[i].count
            for k in 0..<hi2.count { bank[i][(length - hi2.count) / 2 + k] += hi2[k] }
        }
        return bank.flatMap { $0 }
    }

    /// Per-sample parameters: in debug mode a function of q for every sample; otherwise drawn
    /// per sample, and replaced by the identity value where the transform does not fire
    /// (probability `multiplier * p`).
    struct Draws {
        let random: RandomGenerator?
        let debug: Float?
        let n: Int
        let p: Float

        func uniform() -> Float { Float(random!.nextDouble()) }
        func normal() -> Float {
            var v: Float = 0
            random!.fillNormal(&v, count: 1)
            return v
        }

        func fires(_ probability: Float) -> [Bool] {
            if debug != nil { return [Bool](repeating: true, count: n) }
            guard let random else { return [Bool](repeating: false, count: n) }
            return (0..<n).map { _ in Float(random.nextDouble()) < probability }
        }

        func values(_ multiplier: Float, draw: () -> Float, debugValue: (Float) -> Float, otherwise: Float) -> [Float] {
            pairs(multiplier, draw: { (draw(), 0) }, debugValue: { (debugValue($0), 0) }, otherwise: otherwise).map(\.0)
        }

        /// Two values with one firing decision (translations along x and y).
        func pairs(_ multiplier: Float, draw: () -> (Float, Float), debugValue: (Float) -> (Float, Float), otherwise: Float) -> [(Float, Float)] {
            if let debug { return [(Float, Float)](repeating: debugValue(debug), count: n) }
            guard random != nil else { return [(Float, Float)](repeating: (otherwise, otherwise), count: n) }
            return (0..<n).map { _ in
                let v = draw()
                return uniform() < multiplier * p ? v : (otherwise, otherwise)
            }
        }
    }

    /// Augments `images` [N, C, H, W] (C = 1 or 3). `random` draws the parameters (nil with p = 0
    /// draws nothing); `noise` replaces the additive-noise draw (tests); diagnostics are filled
    /// when asked for.
    public func callAsFunction(_ images: Tensor, random: RandomGenerator?, debugPercentile: Float? = nil, noise: Tensor? = nil,
                               diagnostics: UnsafeMutablePointer<AugmentDiagnostics>? = nil) -> Tensor {
        guard images.rank == 4, images.shape[1] == 1 || images.shape[1] == 3 else {
            shapeFailure("the augmentation pipeline expects [N, 1 or 3, H, W], got \(images.shape)")
        }
        let s = settings
        let (n, channels, height, width) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let d = Draws(random: random, debug: debugPercentile, n: n, p: p)
        let (w, h) = (Float(width), Float(height))
        var x = images

        // Pixel blitting and general geometric transforms: G_inv @ pixel_out = pixel_in.
        var g = Matrices(identity: 3, count: n)
        if s.xflip > 0 {
            let i = d.values(s.xflip, draw: { (d.uniform() * 2).rounded(.down) }, debugValue: { ($0 * 2).rounded(.down) }, otherwise: 0)
            g.append { scale2d(1 / (1 - 2 * i[$0]), 1) }
        }
        if s.rotate90 > 0 {
            let i = d.values(s.rotate90, draw: { (d.uniform() * 4).rounded(.down) }, debugValue: { ($0 * 4).rounded(.down) }, otherwise: 0)
            g.append { rotate2d(-(-Float.pi / 2 * i[$0])) }
        }
        if s.xint > 0 {
            let t = d.pairs(s.xint, draw: { ((d.uniform() * 2 - 1) * s.xintMax, (d.uniform() * 2 - 1) * s.xintMax) },
                            debugValue: { q in ((q * 2 - 1) * s.xintMax, (q * 2 - 1) * s.xintMax) }, otherwise: 0)
            g.append { translate2d(-(t[$0].0 * w).rounded(.toNearestOrEven), -(t[$0].1 * h).rounded(.toNearestOrEven)) }
        }
        if s.scale > 0 {
            let v = d.values(s.scale, draw: { exp2f(d.normal() * s.scaleStd) }, debugValue: { exp2f(erfinvF($0 * 2 - 1) * s.scaleStd) }, otherwise: 1)
            g.append { scale2d(1 / v[$0], 1 / v[$0]) }
        }
        let pRot = 1 - (1 - s.rotate * p).clamped(0, 1).squareRoot()
        if s.rotate > 0 {
            let fire = d.fires(pRot)
            let theta = (0..<n).map { i -> Float in
                if let q = debugPercentile { return (q * 2 - 1) * Float.pi * s.rotateMax }
                let t = (d.uniform() * 2 - 1) * Float.pi * s.rotateMax
                return fire[i] ? t : 0
            }
            g.append { rotate2d(-(-theta[$0])) }
        }
        if s.aniso > 0 {
            let v = d.values(s.aniso, draw: { exp2f(d.normal() * s.anisoStd) }, debugValue: { exp2f(erfinvF($0 * 2 - 1) * s.anisoStd) }, otherwise: 1)
            g.append { scale2d(1 / v[$0], 1 / (1 / v[$0])) }
        }
        if s.rotate > 0 {
            // Post-rotation (the debug mode forces its angle to 0).
            let fire = d.fires(pRot)
            let theta = (0..<n).map { i -> Float in
                if debugPercentile != nil { return 0 }
                let t = (d.uniform() * 2 - 1) * Float.pi * s.rotateMax
                return fire[i] ? t : 0
            }
            g.append { rotate2d(-(-theta[$0])) }
        }
        if s.xfrac > 0 {
            let t = d.pairs(s.xfrac, draw: { (d.normal() * s.xfracStd, d.normal() * s.xfracStd) },
                            debugValue: { q in (erfinvF(q * 2 - 1) * s.xfracStd, erfinvF(q * 2 - 1) * s.xfracStd) }, otherwise: 0)
            g.append { translate2d(-t[$0].0 * w, -t[$0].1 * h) }
        }
        diagnostics?.pointee.gInv = g.tensor
        // Executed whenever a geometric multiplier is > 0 (the resampling pair is near-perfect,
        // ~1e-6), except when every sampled transform is exactly the identity (p = 0 early in
        // ADA): then it is skipped, as augment.md allows.
        if s.geometric && !g.isIdentity {
            x = geometric(x, g, diagnostics: diagnostics)
        }

        // Colour: C @ [r, g, b, 1].
        var c = Matrices(identity: 4, count: n)
        let v: [Float] = [1, 1, 1, 0].map { Float($0 / 3.0.squareRoot()) }
        let vv = (0..<16).map { v[$0 / 4] * v[$0 % 4] }
        let eye4 = Matrices(identity: 4, count: 1).values[0]
        if s.brightness > 0 {
            let b = d.values(s.brightness, draw: { d.normal() * s.brightnessStd }, debugValue: { erfinvF($0 * 2 - 1) * s.brightnessStd }, otherwise: 0)
            c.prepend { translate3d(b[$0], b[$0], b[$0]) }
        }
        if s.contrast > 0 {
            let k = d.values(s.contrast, draw: { exp2f(d.normal() * s.contrastStd) }, debugValue: { exp2f(erfinvF($0 * 2 - 1) * s.contrastStd) }, otherwise: 1)
            c.prepend { scale3d(k[$0], k[$0], k[$0]) }
        }
        if s.lumaflip > 0 {
            let i = d.values(s.lumaflip, draw: { (d.uniform() * 2).rounded(.down) }, debugValue: { ($0 * 2).rounded(.down) }, otherwise: 0)
            c.prepend { k in (0..<16).map { eye4[$0] - 2 * vv[$0] * i[k] } }
        }
        if s.hue > 0 && channels > 1 {
            let theta = d.values(s.hue, draw: { (d.uniform() * 2 - 1) * Float.pi * s.hueMax }, debugValue: { ($0 * 2 - 1) * Float.pi * s.hueMax }, otherwise: 0)
            c.prepend { rotate3d(v, theta[$0]) }
        }
        if s.saturation > 0 && channels > 1 {
            let k = d.values(s.saturation, draw: { exp2f(d.normal() * s.saturationStd) }, debugValue: { exp2f(erfinvF($0 * 2 - 1) * s.saturationStd) }, otherwise: 1)
            c.prepend { i in (0..<16).map { vv[$0] + (eye4[$0] - vv[$0]) * k[i] } }
        }
        diagnostics?.pointee.colour = c.tensor
        if s.colour && !c.isIdentity {
            let flat = x.reshaped([n, channels, height * width])
            if channels == 3 {
                let linear = Tensor(c.values.flatMap { m in [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]] }, shape: [n, 3, 3])
                let offset = Tensor(c.values.flatMap { m in [m[3], m[7], m[11]] }, shape: [n, 3, 1])
                x = (matmul(linear, flat) + offset).reshaped(x.shape)
            } else {
                // Grey: the mean of the three colour rows.
                let gain = Tensor(c.values.map { m in ((m[0] + m[1] + m[2]) + (m[4] + m[5] + m[6]) + (m[8] + m[9] + m[10])) / 3 }, shape: [n, 1, 1])
                let offset = Tensor(c.values.map { m in (m[3] + m[7] + m[11]) / 3 }, shape: [n, 1, 1])
                x = (flat * gain + offset).reshaped(x.shape)
            }
        }

        if s.imgfilter > 0 { x = imageFilter(x, d, diagnostics: diagnostics) }

        if s.noise > 0 {
            let sigma = d.values(s.noise, draw: { Swift.abs(d.normal()) * s.noiseStd }, debugValue: { erfinvF($0) * s.noiseStd }, otherwise: 0)
            diagnostics?.pointee.noiseSigma = Tensor(sigma, shape: [n, 1, 1, 1])
            if sigma.contains(where: { $0 != 0 }) {
                let randn = noise ?? (random ?? RandomGenerator(seed: 0)).normal(x.shape)
                x = x + randn * Tensor(sigma, shape: [n, 1, 1, 1])
            }
        }

        if s.cutout > 0 {
            let fire = d.fires(s.cutout * p)
            var mask = [Float](repeating: 1, count: n * height * width)
            for i in 0..<n {
                let size: Float = fire[i] ? s.cutoutSize : 0
                let (cx, cy): (Float, Float) = debugPercentile.map { ($0, $0) } ?? (d.uniform(), d.uniform())
                for row in 0..<height {
                    for col in 0..<width {
                        let keepX = Swift.abs((Float(col) + 0.5) / w - cx) >= size / 2
                        let keepY = Swift.abs((Float(row) + 0.5) / h - cy) >= size / 2
                        mask[(i * height + row) * width + col] = keepX || keepY ? 1 : 0
                    }
                }
            }
            let m = Tensor(mask, shape: [n, 1, height, width])
            diagnostics?.pointee.cutoutMask = m
            x = x * m
        }
        return x
    }

    /// Reflect pad, upsample 2x, grid_sample with the composed transform, downsample (augment.md 2).
    func geometric(_ images: Tensor, _ gIn: Matrices, diagnostics: UnsafeMutablePointer<AugmentDiagnostics>?) -> Tensor {
        let (n, channels, height, width) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let cx = Float(width - 1) / 2, cy = Float(height - 1) / 2
        let hzPad = geomFilter.width / 4
        // Batch-global margins from the transformed corners.
        var margin: [Float] = [-.infinity, -.infinity, -.infinity, -.infinity]  // max(-x), max(-y), max(x), max(y)
        for m in gIn.values {
            for (px, py) in [(-cx, -cy), (cx, -cy), (cx, cy), (-cx, cy)] {
                let tx = m[0] * px + m[1] * py + m[2], ty = m[3] * px + m[4] * py + m[5]
                margin = [Swift.max(margin[0], -tx), Swift.max(margin[1], -ty), Swift.max(margin[2], tx), Swift.max(margin[3], ty)]
            }
        }
        let add: [Float] = [Float(hzPad * 2) - cx, Float(hzPad * 2) - cy, Float(hzPad * 2) - cx, Float(hzPad * 2) - cy]
        let upper: [Float] = [Float(width - 1), Float(height - 1), Float(width - 1), Float(height - 1)]
        let m = (0..<4).map { Int((Swift.min(Swift.max(margin[$0] + add[$0], 0), upper[$0])).rounded(.up)) }
        let (mx0, my0, mx1, my1) = (m[0], m[1], m[2], m[3])
        var g = gIn
        var x = images.pad((mx0, mx1, my0, my1), mode: .reflect)
        g.prepend { _ in translate2d(Float(mx0 - mx1) / 2, Float(my0 - my1) / 2) }
        x = upsample2d(x, geomFilter, up: 2)
        g.prepend { _ in scale2d(2, 2) }
        g.append { _ in scale2d(1 / 2, 1 / 2) }
        g.prepend { _ in translate2d(-0.5, -0.5) }
        g.append { _ in translate2d(0.5, 0.5) }
        let (outH, outW) = ((height + hzPad * 2) * 2, (width + hzPad * 2) * 2)
        // Python floats in the reference: computed in Double, then used as float32 constants.
        g.prepend { _ in scale2d(Float(2 / Double(x.shape[3])), Float(2 / Double(x.shape[2]))) }
        g.append { _ in scale2d(Float(1 / (2 / Double(outW))), Float(1 / (2 / Double(outH)))) }
        let theta = Tensor(g.values.flatMap { Array($0.prefix(6)) }, shape: [n, 2, 3])
        diagnostics?.pointee.theta = theta
        let grid = affineGrid(theta, height: outH, width: outW)
        x = gridSample(x, grid, padding: .zeros)
        precondition(x.shape == [n, channels, outH, outW])
        return downsample2d(x, geomFilter, down: 2, padding: -hzPad * 2, flipFilter: true)
    }

    /// Per-sample amplification of the four frequency bands (augment.md 4).
    func imageFilter(_ images: Tensor, _ d: Draws, diagnostics: UnsafeMutablePointer<AugmentDiagnostics>?) -> Tensor {
        let s = settings
        let (n, channels, height, width) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let bands = 4
        let expected: [Float] = [10, 1, 1, 1].map { $0 / 13 }
        var gains = [[Float]](repeating: [Float](repeating: 1, count: bands), count: n)
        for (i, strength) in s.imgfilterBands.enumerated() {
            let ti = d.debug != nil
                ? [Float](repeating: strength > 0 ? exp2f(erfinvF(d.debug! * 2 - 1) * s.imgfilterStd) : 1, count: n)
                : d.values(s.imgfilter * strength, draw: { exp2f(d.normal() * s.imgfilterStd) }, debugValue: { _ in 1 }, otherwise: 1)
            for k in 0..<n {
                var t = [Float](repeating: 1, count: bands)
                t[i] = ti[k]
                var power: Float = 0
                for b in 0..<bands { power += expected[b] * t[b] * t[b] }
                let norm = power.squareRoot()
                for b in 0..<bands { gains[k][b] *= t[b] / norm }
            }
        }
        let bank = hzFbank.toArray(), taps = hzFbank.shape[1]
        let filters = gains.map { gk in (0..<taps).map { j in (0..<bands).reduce(Float(0)) { $0 + gk[$1] * bank[$1 * taps + j] } } }
        diagnostics?.pointee.imgfilterGain = Tensor(gains.flatMap { $0 }, shape: [n, bands])
        diagnostics?.pointee.imgfilterTaps = Tensor(filters.flatMap { $0 }, shape: [n, taps])
        let perPlane = filters.flatMap { f in [[Float]](repeating: f, count: channels).flatMap { $0 } }
        let pad = taps / 2
        var x = images.reshaped([1, n * channels, height, width]).pad((pad, pad, pad, pad), mode: .reflect)
        x = conv2d(x, Tensor(perPlane, shape: [n * channels, 1, 1, taps]), groups: n * channels)
        x = conv2d(x, Tensor(perPlane, shape: [n * channels, 1, taps, 1]), groups: n * channels)
        return x.reshaped([n, channels, height, width])
    }
}

extension Float {
    func clamped(_ lo: Float, _ hi: Float) -> Float { Swift.min(Swift.max(self, lo), hi) }
}
