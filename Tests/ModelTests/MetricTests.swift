// Metric networks and FID/KID against the golden reference: FID from features and from
// compact 2048-d statistics, the Inception-v3 blocks and the full network, LPIPS-VGG, the
// manifests, and the spec's small reference values.
import FeatureMetrics
import Models
import NN
import Testing
import TensorCore
import TestSupport

@Suite struct FIDTests {
    func statistics(_ t: Tensor) -> FeatureStatistics {
        let s = FeatureStatistics(dimension: t.shape[1])
        s.append(t)
        return s
    }

    @Test(arguments: ["fid_features_d16", "fid_features_nearly_singular_d64"])
    func fidFromFeatures(_ name: String) throws {
        let golden = try GoldenCase("metrics/\(name)")
        defer { record(golden.uncheckedKeys()) }
        let gen = statistics(try golden.tensor("input.features_gen")), real = statistics(try golden.tensor("input.features_real"))
        let result = try FrechetDistance.compute(generated: gen, real: real)
        let expected = Double(golden.config["fid_float64"]!.stringValue!)!
        let viaEigen = Double(golden.config["fid_via_eigenvalues_float64"]!.stringValue!)!
        // README: compare in float64 with rtol ~1e-6 (1e-4 for the nearly-singular case).
        let rtol = name.contains("singular") ? 1e-4 : 1e-6
        #expect(abs(result.fid - expected) <= rtol * abs(expected), "fid \(result.fid) vs \(expected) (eigenvalue route \(viaEigen))")
        record([golden.check("output.fid", Tensor(scalar: Float(result.fid))), golden.check("output.mu_gen", Tensor(gen.mean.map(Float.init))), golden.check("output.mu_real", Tensor(real.mean.map(Float.init))),
                golden.check("output.sigma_gen", Tensor(gen.covariance.map(Float.init), shape: [gen.dimension, gen.dimension])),
                golden.check("output.sigma_real", Tensor(real.covariance.map(Float.init), shape: [real.dimension, real.dimension]))])
    }

    @Test func fidAtDimension2048() throws {
        let golden = try GoldenCase("metrics/fid_d2048_lowrank_plus_diag")
        defer { record(golden.uncheckedKeys()) }
        func sigma(_ a: Tensor, _ d: Tensor) -> [Double] {
            let n = a.shape[0], r = a.shape[1]
            let av = a.toArray().map(Double.init)
            var s = [Double](repeating: 0, count: n * n)
            for i in 0..<n {
                for j in 0..<n {
                    var v = 0.0
                    for k in 0..<r { v += av[i * r + k] * av[j * r + k] }
                    s[i * n + j] = v / 16
                }
                s[i * n + i] += Double(d.data[i])
            }
            return s
        }
        let result = try FrechetDistance.compute(mu1: try golden.tensor("input.mu1").toArray().map(Double.init),
                                                 sigma1: sigma(try golden.tensor("input.A1"), try golden.tensor("input.d1")),
                                                 mu2: try golden.tensor("input.mu2").toArray().map(Double.init),
                                                 sigma2: sigma(try golden.tensor("input.A2"), try golden.tensor("input.d2")))
        let expected = Double(golden.config["fid_float64"]!.stringValue!)!
        #expect(abs(result.fid - expected) <= 1e-6 * expected, "fid \(result.fid) vs \(expected)")
        let trace = Double(golden.config["trace_sqrtm_float64"]!.stringValue!)!
        #expect(abs(result.traceSqrtm - trace) <= 1e-6 * trace)
        record([golden.check("output.fid", Tensor(scalar: Float(result.fid))), golden.check("output.mean_term", Tensor(scalar: Float(result.meanTerm))),
                golden.check("output.trace_sqrtm", Tensor(scalar: Float(result.traceSqrtm))),
                golden.check("output.trace_sigma1", Tensor(scalar: Float(result.traceSigma1))),
                golden.check("output.trace_sigma2", Tensor(scalar: Float(result.traceSigma2)))])
    }

    @Test func specReferenceValues() throws {
        // Two 2-d Gaussians: FID = 2 (spec metrics.md numerical check 2).
        let r1 = try FrechetDistance.compute(mu1: [0, 0], sigma1: [1, 0, 0, 1], mu2: [1, 0], sigma2: [4, 0, 0, 1])
        #expect(abs(r1.fid - 2) < 1e-12)
        let r2 = try FrechetDistance.compute(mu1: [0, 0], sigma1: [1, 0, 0, 4], mu2: [0, 0], sigma2: [4, 0, 0, 1])
        #expect(abs(r2.fid - 2) < 1e-12)
        // Covariance divides by n.
        let s = FeatureStatistics(dimension: 1)
        s.append(Tensor([0, 2], shape: [2, 1]))
        #expect(s.mean == [1] && s.covariance == [1])
        // KID of two all-zero feature sets is 0.
        #expect(KernelInceptionDistance.compute(generated: [Float](repeating: 0, count: 40), real: [Float](repeating: 0, count: 40), dimension: 4, subsets: 3) == 0)
    }
}

@Suite struct InceptionAndLPIPSTests {
    let rng = RandomGenerator(seed: 21)

    func loaded(_ golden: GoldenCase) throws -> InceptionV3 {
        let model = InceptionV3(generator: rng)
        let keys = Set(golden.parameterKeys)
        var weights: [String: Tensor] = [:]
        for e in model.stateDict() where keys.contains(e.key) { weights[e.key] = try golden.parameter(e.key) }
        try model.load(weights, strict: false)
        return model
    }

    @Test(arguments: ["fid_inception_Mixed_5b_FIDInceptionA_192_pool32", "fid_inception_Mixed_6a_InceptionB_288",
                      "fid_inception_Mixed_6b_FIDInceptionC_768_c128", "fid_inception_Mixed_7a_InceptionD_768",
                      "fid_inception_Mixed_7b_FIDInceptionE_1_1280", "fid_inception_Mixed_7c_FIDInceptionE_2_2048",
                      "fid_inception_stem_block0", "fid_inception_stem_block1"])
    func inceptionBlocks(_ name: String) throws {
        let golden = try GoldenCase("metrics/\(name)")
        defer { record(golden.uncheckedKeys()) }
        record(golden.checkPgenSamples())
        let model = try loaded(golden)
        let x = try golden.tensor("input.x")
        let y: Tensor
        if name.hasSuffix("block0") { y = model.stemBlock0(x) }
        else if name.hasSuffix("block1") { y = model.stemBlock1(x) }
        else { y = model.mixed(golden.config["modules"]!.objectValue!.first!.0, x) }
        record([golden.check("output.y", noGrad { y })])
    }

    @Test func fullInceptionWithAndWithoutResize() throws {
        let golden = try GoldenCase("metrics/fid_inception_full_noresize")
        defer { record(golden.uncheckedKeys()) }
        let model = try loaded(golden)
        let blocks = model.blocks(try golden.tensor("input.x") * 2 - 1)
        record((0..<4).map { golden.check("output.block\($0)", blocks[$0]) })
        let resized = try GoldenCase("metrics/fid_inception_full_resize299")
        defer { record(resized.uncheckedKeys()) }
        let model2 = try loaded(resized)
        let features = model2.pytorchFIDFeatures(try resized.tensor("input.x"))
        record([resized.check("output.block3", features.reshaped([1, 2048, 1, 1]))])
    }

    @Test func lpipsDistanceAndGradients() throws {
        let lpips = LPIPS(generator: rng)
        record(try runModuleCase("metrics/lpips_vgg_pgen", module: lpips) { _, t in
            let (total, perLayer) = lpips.distance(try t.get("input.in0"), try t.get("input.in1"))
            var out = ["output.distance": total, "output.loss": total.mean()]
            for (k, p) in perLayer.enumerated() { out["output.per_layer.\(k)"] = p }
            return out
        })
        let x = RandomGenerator(seed: 2).uniform([1, 3, 32, 32], low: -1, high: 1)
        #expect(noGrad { lpips(x, x) }.item() == 0)
    }

    @Test func manifests() throws {
        #expect(try Manifest("pytorch_fid_inception_v3_fid_weights").differences(from: manifestEntries(InceptionV3(generator: rng))) == [])
        #expect(try Manifest("lpips_vgg_v0.1").differences(from: manifestEntries(LPIPS(generator: rng))) == [])
        #expect(InceptionNames.pytorchFID(fromNVIDIA: "layers.mixed_4.tower_1.conv_2.conv.weight") == "Mixed_6b.branch7x7dbl_3.conv.weight")
        #expect(InceptionNames.pytorchFID(fromNVIDIA: "layers.mixed_9.tower_1_mixed_conv_1.bn.running_var") == "Mixed_7b.branch3x3dbl_3b.bn.running_var")
        #expect(InceptionNames.pytorchFID(fromNVIDIA: "layers.conv_3.conv.weight") == "Conv2d_3b_1x1.conv.weight")
        #expect(InceptionNames.pytorchFID(fromNVIDIA: "output.bias") == "fc.bias")
    }
}
