// Convolution kernels (im2col fast paths, multi-image chunks, row bands) against a naive
// Double-precision loop over many small geometries, including maps smaller than the kernel.
import LinearAlgebra
import Testing
import TensorCore

struct ConvolutionReferenceTests {
    struct Case: CustomStringConvertible {
        var n, c, h, w, o, k, stride, pad, groups: Int
        var description: String { "n\(n) c\(c) \(h)x\(w) o\(o) k\(k) s\(stride) p\(pad) g\(groups)" }
    }

    static let cases: [Case] = {
        var result: [Case] = []
        for (h, w) in [(1, 1), (2, 3), (5, 4), (7, 7)] {
            for (k, pad) in [(1, 0), (3, 1), (3, 2), (5, 2), (3, 0)] where h + 2 * pad >= k && w + 2 * pad >= k {
                for stride in [1, 2] {
                    result.append(Case(n: 3, c: 4, h: h, w: w, o: 6, k: k, stride: stride, pad: pad, groups: 1))
                }
            }
        }
        result.append(Case(n: 2, c: 4, h: 6, w: 5, o: 4, k: 3, stride: 1, pad: 1, groups: 2))
        return result
    }()

    /// y[n,o,i,j] = sum w[o,c,a,b] x[n,c,i*s-p+a, j*s-p+b] in Double, with both gradients
    /// for the loss sum(y * gy).
    static func naive(_ x: [Float], _ wt: [Float], _ gy: [Float], _ t: Case, oh: Int, ow: Int) -> (y: [Double], gx: [Double], gw: [Double]) {
        let cg = t.c / t.groups, og = t.o / t.groups
        var y = [Double](repeating: 0, count: t.n * t.o * oh * ow)
        var gx = [Double](repeating: 0, count: x.count), gw = [Double](repeating: 0, count: wt.count)
        for n in 0..<t.n {
            for o in 0..<t.o {
                let gr = o / og
                for i in 0..<oh {
                    for j in 0..<ow {
                        let yi = ((n * t.o + o) * oh + i) * ow + j
                        for cl in 0..<cg {
                            let c = gr * cg + cl
                            for a in 0..<t.k {
                                for b in 0..<t.k {
                                    let iy = i * t.stride - t.pad + a, ix = j * t.stride - t.pad + b
                                    guard iy >= 0, iy < t.h, ix >= 0, ix < t.w else { continue }
                                    let xi = ((n * t.c + c) * t.h + iy) * t.w + ix
                                    let wi = ((o * cg + cl) * t.k + a) * t.k + b
                                    y[yi] += Double(wt[wi]) * Double(x[xi])
                                    gx[xi] += Double(wt[wi]) * Double(gy[yi])
                                    gw[wi] += Double(x[xi]) * Double(gy[yi])
                                }
                            }
                        }
                    }
                }
            }
        }
        return (y, gx, gw)
    }

    func expectClose(_ a: [Float], _ b: [Double], _ what: String, _ t: Case) {
        #expect(a.count == b.count, "\(what) \(t)")
        let scale = max(1, b.map(abs).max() ?? 1)
        let worst = zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
        #expect(worst <= 1e-5 * scale, "\(what) of \(t): max error \(worst)")
    }

    @Test(arguments: cases) func matchesNaiveConvolution(_ t: Case) {
        let x = RandomGenerator(seed: 1).normal([t.n, t.c, t.h, t.w]).requiringGrad()
        let w = RandomGenerator(seed: 2).normal([t.o, t.c / t.groups, t.k, t.k]).requiringGrad()
        let y = conv2d(x, w, stride: t.stride, padding: t.pad, groups: t.groups)
        let gy = RandomGenerator(seed: 3).normal(y.shape)
        (y * gy).sum().backward()
        let reference = Self.naive(x.toArray(), w.toArray(), gy.toArray(), t, oh: y.shape[2], ow: y.shape[3])
        expectClose(y.toArray(), reference.y, "output", t)
        expectClose(x.grad!.toArray(), reference.gx, "input gradient", t)
        expectClose(w.grad!.toArray(), reference.gw, "weight gradient", t)
    }
}

/// `--precision bf16`: every product of a convolution (forward, input and weight gradient) has
/// bf16 operands and float32 accumulation, so each equals the naive loop over bf16-rounded
/// operands to float32 accuracy (the forward pass rounds x and w, the input gradient w and the
/// output gradient, the weight gradient x and the output gradient).
struct BFloat16ConvolutionTests {
    static let cases = ConvolutionReferenceTests.cases.filter { $0.h >= 2 } + [
        .init(n: 2, c: 16, h: 9, w: 9, o: 8, k: 3, stride: 1, pad: 1, groups: 1),
        .init(n: 2, c: 8, h: 6, w: 6, o: 16, k: 1, stride: 1, pad: 0, groups: 1),
    ]

    @Test(arguments: cases) func productsUseBF16OperandsWithFloat32Accumulation(_ t: ConvolutionReferenceTests.Case) {
        BLAS.$precisionOverride.withValue(.bf16) {
            #expect(ConvBackend.current == .im2col)
            let x = RandomGenerator(seed: 1).normal([t.n, t.c, t.h, t.w]).requiringGrad()
            let w = RandomGenerator(seed: 2).normal([t.o, t.c / t.groups, t.k, t.k]).requiringGrad()
            let y = conv2d(x, w, stride: t.stride, padding: t.pad, groups: t.groups)
            let gy = RandomGenerator(seed: 3).normal(y.shape)
            (y * gy).sum().backward()
            let r = { (v: [Float]) in v.map(BFloat16Rounding.rounded) }
            let (xs, ws, gys) = (x.toArray(), w.toArray(), gy.toArray())
            let test = ConvolutionReferenceTests()
            let oh = y.shape[2], ow = y.shape[3]
            test.expectClose(y.toArray(), ConvolutionReferenceTests.naive(r(xs), r(ws), gys, t, oh: oh, ow: ow).y, "bf16 output", t)
            test.expectClose(x.grad!.toArray(), ConvolutionReferenceTests.naive(xs, r(ws), r(gys), t, oh: oh, ow: ow).gx, "bf16 input gradient", t)
            test.expectClose(w.grad!.toArray(), ConvolutionReferenceTests.naive(r(xs), ws, r(gys), t, oh: oh, ow: ow).gw, "bf16 weight gradient", t)
            // And it is not the float32 convolution.
            let exact = ConvolutionReferenceTests.naive(xs, ws, gys, t, oh: oh, ow: ow).y
            #expect(zip(y.toArray(), exact).contains { abs(Double($0) - $1) > 1e-4 }, "\(t): bf16 output equals float32")
        }
    }
}

/// The oneDNN direct convolutions (the default backend) against the im2col path, the reference
/// oracle, on shapes like the networks' (3x3, 7x7 stride 2, stride-2 3x3, grouped convolutions
/// as the fused modulated convolutions, the transposed convolution of the synthesis upsampling),
/// and against the naive loop on every small case with each backend and sgemm library.
struct ConvolutionBackendTests {
    struct Shape: CustomStringConvertible, Sendable {
        var n, c, h, o, k, stride, pad, groups: Int
        var description: String { "n\(n) c\(c) \(h)x\(h) o\(o) k\(k) s\(stride) p\(pad) g\(groups)" }
    }

    static let shapes: [Shape] = [
        Shape(n: 2, c: 3, h: 32, o: 16, k: 7, stride: 2, pad: 3, groups: 1),
        Shape(n: 2, c: 16, h: 14, o: 16, k: 3, stride: 1, pad: 1, groups: 1),
        Shape(n: 3, c: 32, h: 9, o: 24, k: 3, stride: 2, pad: 1, groups: 1),
        Shape(n: 2, c: 16, h: 10, o: 32, k: 1, stride: 2, pad: 0, groups: 1),
        Shape(n: 4, c: 64, h: 8, o: 64, k: 3, stride: 1, pad: 1, groups: 4),
        Shape(n: 2, c: 24, h: 6, o: 8, k: 3, stride: 1, pad: 0, groups: 1),
    ]

    static func run(_ s: Shape, _ backend: ConvBackend) -> (y: [Float], gx: [Float], gw: [Float], gt: [Float]) {
        ConvBackend.$override.withValue(backend) {
            let x = RandomGenerator(seed: 11).normal([s.n, s.c, s.h, s.h]).requiringGrad()
            let w = RandomGenerator(seed: 12).normal([s.o, s.c / s.groups, s.k, s.k]).requiringGrad()
            let y = conv2d(x, w, stride: s.stride, padding: s.pad, groups: s.groups)
            (y * RandomGenerator(seed: 13).normal(y.shape)).sum().backward()
            // The transposed convolution (StyleGAN2's upsampling conv) of y with w [o, c, k, k].
            let t = convTranspose2d(y.detach(), w.detach(), stride: s.stride, padding: s.pad)
            return (y.toArray(), x.grad!.toArray(), w.grad!.toArray(), t.toArray())
        }
    }

    func expectClose(_ a: [Float], _ b: [Float], _ what: String, _ s: Shape) {
        #expect(a.count == b.count)
        let scale = max(1, b.map { abs(Double($0)) }.max() ?? 1)
        let worst = zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
        #expect(worst <= 2e-5 * scale, "\(what) of \(s): max difference \(worst) (scale \(scale))")
    }

    @Test(arguments: shapes) func oneDNNMatchesIm2col(_ s: Shape) {
        let fast = Self.run(s, .onednn), reference = Self.run(s, .im2col)
        expectClose(fast.y, reference.y, "output", s)
        expectClose(fast.gx, reference.gx, "input gradient", s)
        expectClose(fast.gw, reference.gw, "weight gradient", s)
        if s.groups == 1 { expectClose(fast.gt, reference.gt, "transposed convolution", s) }
        // Deterministic: the same call gives the same bits.
        let again = Self.run(s, .onednn)
        #expect(again.y == fast.y && again.gx == fast.gx && again.gt == fast.gt)
    }

    @Test func oneDNNRunsItsDirectKernels() {
        _ = Self.run(Self.shapes[1], .onednn)
        let used = ConvBackend.lastImplementations
        #expect(used.forward.hasPrefix("jit") && used.backwardData.hasPrefix("jit"), "\(used)")
    }

    @Test(arguments: ConvBackend.allCases) func everyBackendMatchesTheNaiveLoop(_ backend: ConvBackend) {
        for library in GEMMLibrary.allCases {
            BLAS.$gemmOverride.withValue(library) {
                ConvBackend.$override.withValue(backend) {
                    for t in ConvolutionReferenceTests.cases { ConvolutionReferenceTests().matchesNaiveConvolution(t) }
                }
            }
        }
    }
}
