// StyleGAN2-ADA's loss phases against the reference (training/ goldens: Gmain, Greg, Gboth,
// Dmain, Dreg, Dboth on the tiny G and D, with and without the bgc augmentation in debug mode,
// with and without style mixing): reported per-sample statistics, intermediate tensors, the
// accumulated gradient of every parameter of the phase's network, pl_mean and w_avg after the
// phase; and the arithmetic checks of training.md.
import Common
import Models
import NN
import Testing
import TensorCore
import TestSupport

/// The draws stored in a golden case, replayed: style mixing, path-length noise, const
/// synthesis noise, the augmentation in debug mode.
final class ReplayedRandomness: StyleGAN2Randomness {
    let golden: GoldenCase
    let debugPercentile: Float?
    init(_ golden: GoldenCase) {
        self.golden = golden
        debugPercentile = golden.config["augment_pipe"]?["debug_percentile"]?.doubleValue.map { Float($0) }
    }
    func styleMixing(probability: Float, batch: Int, zDim: Int, numWs: Int) -> (cutoff: Int, z: Tensor)? {
        let rand = try! golden.tensor("input.style_mixing_rand").item(), cutoff = Int(try! golden.tensor("input.style_mixing_cutoff").item())
        let z = try! golden.tensor("input.z_mix")
        return rand < probability ? (cutoff, z.slice(dim: 0, start: 0, end: batch)) : nil
    }
    func synthesisNoise() -> NoiseMode { .const }
    func pathLengthNoise(_ shape: [Int]) -> Tensor { try! golden.tensor("input.pl_randn") }
    func augment(_ pipe: AugmentPipe, _ images: Tensor) -> Tensor { pipe(images, random: nil, debugPercentile: debugPercentile) }
}

@Suite struct StyleGAN2LossTests {
    static func networks(_ golden: GoldenCase) throws -> (Generator, Discriminator, AugmentPipe?) {
        let gc = golden.config["networks"]!["G"] ?? golden.config["shared_networks"]?["G"]
        var c = StyleGAN2Config()
        let g = gc?["constructor"] ?? golden.config["networks"]!["D"]!["constructor"]!
        c.resolution = Int(g["img_resolution"]!.intValue!)
        c.imageChannels = Int(g["img_channels"]!.intValue!)
        if let gc {
            let k = gc["constructor"]!
            c.zDim = Int(k["z_dim"]!.intValue!)
            c.wDim = Int(k["w_dim"]!.intValue!)
            c.mappingLayers = Int(k["mapping_kwargs"]!["num_layers"]!.intValue!)
            c.channelBase = Int(k["synthesis_kwargs"]!["channel_base"]!.intValue!)
            c.channelMax = Int(k["synthesis_kwargs"]!["channel_max"]!.intValue!)
            c.convClamp = k["synthesis_kwargs"]!["conv_clamp"]!.doubleValue.map { Float($0) }
        }
        if let dc = golden.config["networks"]!["D"]?["constructor"] {
            c.channelBase = Int(dc["channel_base"]!.intValue!)
            c.channelMax = Int(dc["channel_max"]!.intValue!)
            c.mbstdGroupSize = dc["epilogue_kwargs"]!["mbstd_group_size"]!.intValue.map { Int($0) }
            c.mbstdChannels = Int(dc["epilogue_kwargs"]!["mbstd_num_channels"]!.intValue!)
        }
        let G = Generator(c, generator: RandomGenerator(seed: 1)), D = Discriminator(c, generator: RandomGenerator(seed: 2))
        let gKeys = G.stateDict().map(\.key), dKeys = D.stateDict().map(\.key)
        if golden.has("param.G.mapping.w_avg") { try G.load(golden.stateDict(keys: gKeys, prefix: "G.")) }
        if golden.has("param.D.b4.out.weight") { try D.load(golden.stateDict(keys: dKeys, prefix: "D.")) }
        var pipe: AugmentPipe? = nil
        if let a = golden.config["augment_pipe"] {
            pipe = AugmentPipe(try JSONValueDecoder().decode(AugmentSettings.self, from: a["constructor"]!), p: Float(a["p"]!.doubleValue!))
        }
        G.train()
        D.train()
        return (G, D, pipe)
    }

    @Test(arguments: ["Gmain", "Gmain_augment_bgc", "Gmain_style_mixing", "Greg", "Greg_style_mixing", "Gboth", "Gboth_augment_bgc",
                      "Dmain", "Dmain_augment_bgc", "Dreg", "Dreg_augment_bgc", "Dboth", "Dboth_augment_bgc"])
    func phaseMatchesTheReference(_ name: String) throws {
        let golden = try GoldenCase("training/\(name)")
        let (G, D, pipe) = try Self.networks(golden)
        let k = golden.config["loss_kwargs"]!
        let loss = StyleGAN2Loss(G: G, D: D, augmentPipe: pipe, r1Gamma: Float(k["r1_gamma"]!.doubleValue!),
                                 styleMixingProb: Float(k["style_mixing_prob"]!.doubleValue!), plWeight: Float(k["pl_weight"]!.doubleValue!),
                                 plBatchShrink: Int(k["pl_batch_shrink"]!.intValue!), plDecay: Float(k["pl_decay"]!.doubleValue!))
        if golden.has("input.pl_mean") { loss.plMean = try golden.tensor("input.pl_mean").item() }
        let phase = StyleGAN2Phase(rawValue: golden.config["phase"]!.stringValue!)!
        var observed: [String: Tensor] = [:]
        let real = golden.has("input.real_img") ? try golden.tensor("input.real_img") : Tensor.zeros([1])
        let z = golden.has("input.gen_z") ? try golden.tensor("input.gen_z") : Tensor.zeros([1, G.config.zDim])
        loss.accumulateGradients(phase, realImages: real, genZ: z, gain: Float(golden.config["gain"]!.doubleValue!), random: ReplayedRandomness(golden),
                                 report: { observed["output." + $0.replacing("/", with: ".")] = $1.detach() },
                                 inspect: { observed["output." + $0] = $1.detach() })
        var failures: [String?] = []
        for key in golden.keys(withPrefix: "output.") { failures.append(golden.check(key, observed[key])) }
        let (network, prefix): (Module, String) = phase.trainsGenerator ? (G, "G.") : (D, "D.")
        for (key, p) in network.namedParameters() {
            failures.append(golden.check("grad.param.\(prefix)\(key)", p.grad ?? Tensor.zeros(p.shape)))
        }
        // The frozen network gets no gradient.
        let frozen: Module = phase.trainsGenerator ? D : G
        #expect(frozen.parameters.allSatisfy { $0.grad == nil })
        let means = loss.takePathLengthMeans()
        #expect(means.count == (phase == .Greg || phase == .Gboth ? 1 : 0))
        if golden.has("state_after.pl_mean") { failures.append(golden.check("state_after.pl_mean", Tensor(scalar: means[0]))) }
        if golden.has("state_after.G.mapping.w_avg") { failures.append(golden.check("state_after.G.mapping.w_avg", G.mapping.wAvg)) }
        record(failures + golden.uncheckedKeys())
    }

    /// training.md numerical checks 4-6.
    @Test func lossArithmetic() {
        let logits = Tensor([-2, 0, 3], shape: [3, 1])
        #expect(abs((-logits).softplus().mean().item() - 0.956221) < 1e-6)
        #expect(abs(Tensor([0], shape: [1]).softplus().item() - 0.693147) < 1e-6)
        // R1 of a linear "discriminator" sum(a * x) is ||a||^2 for every sample.
        let a = RandomGenerator(seed: 1).normal([1, 3, 4, 4])
        let x = RandomGenerator(seed: 2).normal([2, 3, 4, 4]).requiringGrad()
        let (_, _, penalty) = StyleGAN2Loss.r1(images: x) { ($0 * a).sum(dims: [1, 2, 3]) }
        let norm = a.square().sum().item()
        #expect(penalty.toArray().allSatisfy { abs($0 - norm) < 1e-4 * norm })
        // Path-length mean update from 0 with lengths [1, 3].
        let mean = lerp(Tensor(scalar: 0), Tensor([1, 3]).mean(), 0.01)
        #expect(abs(mean.item() - 0.02) < 1e-7)
        let penalties = (Tensor([1, 3]) - mean).square().toArray()
        #expect(abs(penalties[0] - 0.9604) < 1e-5 && abs(penalties[1] - 8.8804) < 1e-4)
        // A linear synthesis img = M w: the length is sqrt(mean_k ||M_k^T noise||^2).
        let m = RandomGenerator(seed: 3).normal([6, 5])
        let ws = RandomGenerator(seed: 4).normal([1, 2, 5]).requiringGrad()
        let img = matmul(ws.reshaped([2, 5]), m, transposeB: true).reshaped([1, 2, 6])
        let noise = RandomGenerator(seed: 5).normal([1, 2, 6])
        let (_, lengths) = StyleGAN2Loss.pathLengths(img: img, ws: ws, noise: noise)
        let mt = matmul(noise.reshaped([2, 6]), m)  // row k = M^T noise_k
        let expected = (mt.square().sum(dims: [1]).mean().sqrt()).item()
        #expect(abs(lengths.item() - expected) < 1e-5 * expected)
    }
}
