// Convolution kernels (im2col fast paths, multi-image chunks, row bands) against a naive
// Double-precision loop over many small geometries, including maps smaller than the kernel.
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
