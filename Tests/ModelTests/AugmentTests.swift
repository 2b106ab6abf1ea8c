// The ADA pipeline against the reference's debug mode (every transform alone and the
// bg/bgc/bgcf/bgcfnc presets: output, image gradient and the diagnostics: composed matrices,
// filter gains and taps, noise sigma, cutout mask), its filters, the identity at p = 0, the
// adjoint property of its backward pass (augment.md check 6) and second-order gradients.
import Common
import Models
import Testing
import TensorCore
import TestSupport

@Suite struct AugmentTests {
    static let cases = ["aniso", "bg_q0p25", "bg_q0p6", "bgc_q0p25", "bgc_q0p6", "bgcf_q0p25", "bgcf_q0p6", "bgcfnc_q0p6", "brightness",
                        "contrast", "cutout", "hue", "imgfilter", "lumaflip", "noise", "rotate", "rotate90", "saturation", "scale", "xflip",
                        "xfrac", "xint"]

    @Test(arguments: cases)
    func debugModeMatchesTheReference(_ name: String) throws {
        let golden = try GoldenCase("augment/\(name)")
        let settings = try JSONValueDecoder().decode(AugmentSettings.self, from: golden.config["constructor"]!)
        let pipe = AugmentPipe(settings, p: 1)
        let q = Float(golden.config["q"]!.doubleValue!)
        record(try runModuleCase("augment/\(name)", module: pipe) { g, t in
            var diagnostics = AugmentDiagnostics()
            let noise = g.has("input.noise_randn") ? try t.get("input.noise_randn") : nil
            let y = pipe(try t.get("input.images"), random: nil, debugPercentile: q, noise: noise, diagnostics: &diagnostics)
            var out = ["output.images": y]
            let extra: [(String, Tensor?)] = [("output.G_inv", diagnostics.gInv), ("output.theta", diagnostics.theta), ("output.C", diagnostics.colour),
                                              ("output.imgfilter_gain", diagnostics.imgfilterGain), ("output.imgfilter_taps", diagnostics.imgfilterTaps),
                                              ("output.noise_sigma", diagnostics.noiseSigma), ("output.cutout_mask", diagnostics.cutoutMask)]
            for (key, value) in extra { if let value, g.has(key) { out[key] = value } }
            return out
        })
    }

    @Test func filtersAreTheReferenceBuffers() throws {
        let golden = try GoldenCase("augment/bgcf_q0p6")
        let pipe = AugmentPipe(AugmentPreset.bgcf.settings)
        #expect(compareTensors(pipe.hzGeom, try golden.tensor("param.Hz_geom"), rtol: 1e-6, atolRel: 1e-7) == nil)
        #expect(compareTensors(pipe.hzFbank, try golden.tensor("param.Hz_fbank"), rtol: 1e-6, atolRel: 1e-7) == nil)
        #expect(abs(pipe.hzGeom.toArray().reduce(0, +) - 1) < 1e-6)
        let bank = pipe.hzFbank.toArray()
        for row in 0..<4 { #expect(abs(bank[(row * 43)..<((row + 1) * 43)].reduce(0, +) - (row == 0 ? 1 : 0)) < 1e-6) }
        #expect(abs(erfinv(0.5) - 0.4769362762044699) < 1e-12 && abs(erfinv(-0.9) + 1.1630871536766743) < 1e-12)
    }

    @Test func probabilityZeroIsTheIdentity() {
        let x = RandomGenerator(seed: 1).uniform([3, 3, 32, 32], low: -1, high: 1)
        let pipe = AugmentPipe(AugmentPreset.bgcfnc.settings, p: 0)
        let y = pipe(x, random: RandomGenerator(seed: 2))
        #expect(compareTensors(y, x, rtol: 0, atolRel: 1e-6) == nil)
    }

    /// For fixed parameters the pipeline is affine in the image (brightness adds a constant),
    /// A(x) = L x + b: <A(x) - A(0), y> = <x, L^T y> with the backward pass as L^T (augment.md
    /// check 6); its gradient also carries a second-order term, as R1 needs.
    @Test func backwardIsTheAdjointAndSecondOrderFlows() {
        let pipe = AugmentPipe(AugmentPreset.bgcf.settings, p: 0.7)
        let x = RandomGenerator(seed: 3).uniform([2, 3, 32, 32], low: -1, high: 1).requiringGrad()
        let yDir = RandomGenerator(seed: 4).normal([2, 3, 32, 32])
        let ax = pipe(x, random: RandomGenerator(seed: 5))
        let a0 = noGrad { pipe(Tensor.zeros(x.shape), random: RandomGenerator(seed: 5)) }
        let adjoint = Autograd.grad(of: [(ax * yDir).sum()], wrt: [x])[0]!
        let lhs = ((ax - a0) * yDir).toArray().reduce(0.0) { $0 + Double($1) }
        let rhs = zip(x.toArray(), adjoint.toArray()).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(lhs - rhs) <= 1e-5 * max(abs(lhs), 1), "<A x, y> = \(lhs), <x, A^T y> = \(rhs)")
        // d/dw of ||d <w * A(x), 1> / dx||^2: a second-order path through the pipe.
        let weight = Tensor.ones([1, 3, 1, 1]).requiringGrad()
        let inner = Autograd.grad(of: [(pipe(x, random: RandomGenerator(seed: 5)) * weight).square().sum()], wrt: [x], createGraph: true)[0]!
        let outer = Autograd.grad(of: [inner.square().sum()], wrt: [weight])[0]
        #expect(outer.map { $0.toArray().allSatisfy { $0.isFinite && $0 != 0 } } == true)
    }
}


