// StyleGAN2 layers, blocks and networks against the golden reference (forward and gradients),
// the R1 and path-length double-backward cases, and the state-dict manifests of the 256x256
// presets.
import Models
import NN
import Testing
import TensorCore
import TestSupport

@Suite struct StyleGAN2LayerTests {
    let rng = RandomGenerator(seed: 1)
    let sqrtHalf = Float(0.5.squareRoot())

    @Test func conv2dLayers() throws {
        let down = Conv2dLayer(6, 8, kernel: 3, activation: .lrelu, down: 2, convClamp: 256, generator: rng)
        record(try runModuleCase("sg2/conv2dlayer_down2_lrelu_clamp_gain_sqrthalf", module: down) { _, t in ["output.y": down(try t.get("input.x"), gain: sqrtHalf)] })
        let fromrgb = Conv2dLayer(3, 8, kernel: 1, activation: .lrelu, convClamp: 256, generator: rng)
        record(try runModuleCase("sg2/conv2dlayer_fromrgb", module: fromrgb) { _, t in ["output.y": fromrgb(try t.get("input.x"))] })
        let skip = Conv2dLayer(6, 8, kernel: 1, bias: false, down: 2, generator: rng)
        record(try runModuleCase("sg2/conv2dlayer_skip_1x1_down2_gain_sqrthalf", module: skip) { _, t in ["output.y": skip(try t.get("input.x"), gain: sqrtHalf)] })
    }

    @Test func synthesisLayersAndToRGB() throws {
        for (name, up, fused) in [("synthesislayer_up1_clamp_active", 1, true), ("synthesislayer_up2_noiseconst_fused0", 2, false),
                                  ("synthesislayer_up2_noiseconst_fused1", 2, true)] {
            let layer = SynthesisLayer(8, 6, wDim: 16, resolution: 8, up: up, convClamp: 256, generator: rng)
            record(try runModuleCase("sg2/\(name)", module: layer) { _, t in
                ["output.y": layer(try t.get("input.x"), try t.get("input.w"), noise: .const, fusedModconv: fused)]
            })
        }
        let torgb = ToRGBLayer(8, 3, wDim: 16, convClamp: 256, generator: rng)
        record(try runModuleCase("sg2/torgb", module: torgb) { _, t in ["output.y": torgb(try t.get("input.x"), try t.get("input.w"), fusedModconv: true)] })
    }

    @Test func synthesisBlocks() throws {
        let first = SynthesisBlock(0, 8, wDim: 16, resolution: 4, imageChannels: 3, convClamp: 256, generator: rng)
        first.eval()
        record(try runModuleCase("sg2/synthesisblock_skip_first_const", module: first) { _, t in
            let (x, img) = first(nil, nil, try t.get("input.ws"), noise: .const)
            return ["output.x": x, "output.img": img]
        })
        let up = SynthesisBlock(8, 8, wDim: 16, resolution: 8, imageChannels: 3, convClamp: 256, generator: rng)
        up.eval()
        record(try runModuleCase("sg2/synthesisblock_skip_up", module: up) { _, t in
            let (x, img) = up(try t.get("input.x"), try t.get("input.img"), try t.get("input.ws"), noise: .const)
            return ["output.x": x, "output.img": img]
        })
    }

    @Test func mappingNetwork() throws {
        let eval = MappingNetwork(zDim: 32, wDim: 48, numWs: 6, numLayers: 3, generator: rng)
        eval.eval()
        record(try runModuleCase("sg2/mapping_eval_truncation_cutoff", module: eval) { _, t in
            ["output.ws": eval(try t.get("input.z"), truncationPsi: 0.6, truncationCutoff: 3)]
        })
        let train = MappingNetwork(zDim: 32, wDim: 48, numWs: 6, numLayers: 3, generator: rng)
        record(try runModuleCase("sg2/mapping_train_w_avg_update", module: train) { _, t in ["output.ws": train(try t.get("input.z"))] })
    }

    @Test(arguments: [("minibatch_std_N2_group4_ch1", 4, 1), ("minibatch_std_N4_groupNone_ch1", 0, 1),
                      ("minibatch_std_N6_group3_ch2", 3, 2), ("minibatch_std_N8_group4_ch1", 4, 1)])
    func minibatchStd(_ c: (String, Int, Int)) throws {
        let layer = MinibatchStdLayer(groupSize: c.1 == 0 ? nil : c.1, numChannels: c.2)
        record(try runModuleCase("sg2/\(c.0)", module: Module()) { _, t in ["output.y": layer(try t.get("input.x"))] })
    }

    @Test func discriminatorBlocksAndEpilogue() throws {
        let first = DiscriminatorBlock(0, tmpChannels: 8, outChannels: 16, resolution: 16, imageChannels: 3, convClamp: 256, generator: rng)
        record(try runModuleCase("sg2/discriminatorblock_resnet_first_fromrgb", module: first) { _, t in
            ["output.x": first(nil, image: try t.get("input.img"))]
        })
        let inner = DiscriminatorBlock(8, tmpChannels: 8, outChannels: 16, resolution: 16, imageChannels: 3, convClamp: 256, generator: rng)
        record(try runModuleCase("sg2/discriminatorblock_resnet_inner", module: inner) { _, t in ["output.x": inner(try t.get("input.x"), image: nil)] })
        let epilogue = DiscriminatorEpilogue(16, mbstdGroupSize: 4, convClamp: 256, generator: rng)
        record(try runModuleCase("sg2/discriminator_epilogue", module: epilogue) { _, t in ["output.y": epilogue(try t.get("input.x"))] })
    }
}

@Suite struct StyleGAN2NetworkTests {
    @Test func tinyGeneratorWithAndWithoutTruncation() throws {
        let g = Generator(.tiny, generator: RandomGenerator(seed: 2))
        #expect(g.parameterCount == 263_987)
        g.eval()
        record(try runModuleCase("stylegan2/G_tiny_eval_noiseconst", module: g) { golden, t in
            let z = try t.get("input.z")
            let (img, ws) = g(z, noise: .const)
            let (img7, ws7) = noGrad { g(z.detach(), truncationPsi: 0.7, noise: .const) }
            return ["output.img": img, "output.ws": ws, "output.img@psi0.7": img7, "output.ws@psi0.7": ws7]
        })
    }

    @Test func tinyDiscriminator() throws {
        var config = StyleGAN2Config.tiny
        config.channelBase = 512
        config.channelMax = 32
        let d = Discriminator(config, generator: RandomGenerator(seed: 3))
        record(try runModuleCase("stylegan2/D_tiny_resnet", module: d) { _, t in ["output.logits": d(try t.get("input.img"))] })
        #expect(Discriminator(.tiny, generator: RandomGenerator(seed: 3)).parameterCount == 288_993)
    }

    @Test func r1PenaltySecondOrder() throws {
        let golden = try GoldenCase("double_backward/r1_penalty_D_tiny")
        defer { record(golden.uncheckedKeys()) }
        var config = StyleGAN2Config.tiny
        config.resolution = 16
        config.channelBase = 256
        config.channelMax = 32
        let d = Discriminator(config, generator: RandomGenerator(seed: 4))
        try d.load(golden.stateDict(keys: d.stateDict().map(\.key)))
        let img = try golden.tensor("input.img").requiringGrad()
        let (logits, r1Grads, penalty) = StyleGAN2Loss.r1(images: img) { d($0) }
        let loss = penalty.mean()
        loss.backward()
        var failures = [golden.check("output.logits", logits), golden.check("output.r1_grads", r1Grads),
                        golden.check("output.r1_penalty", penalty), golden.check("output.loss", loss),
                        golden.check("grad.input.img", img.grad)]
        let grads = parameterGrads(d)
        for key in golden.keys(withPrefix: "grad.param.") {
            failures.append(golden.check(key, grads[String(key.dropFirst("grad.param.".count))]))
        }
        record(failures)
    }

    @Test func pathLengthSecondOrder() throws {
        let golden = try GoldenCase("double_backward/path_length_G_tiny")
        defer { record(golden.uncheckedKeys()) }
        var config = StyleGAN2Config.tiny
        config.zDim = 32
        config.wDim = 32
        config.resolution = 16
        config.channelBase = 256
        config.channelMax = 32
        let g = Generator(config, generator: RandomGenerator(seed: 5))
        try g.load(golden.stateDict(keys: g.stateDict().map(\.key)))
        g.train()
        let z = try golden.tensor("input.z").requiringGrad()
        let ws = g.mapping(z)
        let img = g.synthesis(ws, noise: .const)
        let noise = try golden.tensor("input.pl_noise")
        let (plGrads, lengths) = StyleGAN2Loss.pathLengths(img: img, ws: ws, noise: noise)
        let plMean = try golden.tensor("input.pl_mean")
        let plMeanNew = lerp(plMean, lengths.mean(), 0.01)
        let penalty = (lengths - plMeanNew).square()
        let loss = (penalty * 2).mean()
        loss.backward()
        var failures = [golden.check("output.ws", ws), golden.check("output.img", img), golden.check("output.pl_grads", plGrads),
                        golden.check("output.pl_lengths", lengths), golden.check("output.pl_mean_new", plMeanNew),
                        golden.check("output.pl_penalty", penalty), golden.check("output.loss", loss), golden.check("grad.input.z", z.grad)]
        let grads = parameterGrads(g)
        for key in golden.keys(withPrefix: "grad.param.") {
            failures.append(golden.check(key, grads[String(key.dropFirst("grad.param.".count))]))
        }
        failures.append(golden.check("state_after.mapping.w_avg", g.mapping.wAvg))
        record(failures)
    }

    @Test func manifestsOf256Presets() throws {
        let auto = StyleGAN2Config.auto(resolution: 256)
        let g = Generator(auto, generator: RandomGenerator(seed: 6))
        #expect(try Manifest("stylegan2_auto256_1gpu_G").differences(from: manifestEntries(g)) == [])
        #expect(g.parameterCount == 23_191_522)
        let d = Discriminator(auto, generator: RandomGenerator(seed: 7))
        #expect(try Manifest("stylegan2_auto256_1gpu_D").differences(from: manifestEntries(d)) == [])
        #expect(d.parameterCount == 24_001_089)
        let paper = Generator(.paper256, generator: RandomGenerator(seed: 8))
        #expect(try Manifest("stylegan2_paper256_G").differences(from: manifestEntries(paper)) == [])
        #expect(paper.parameterCount == 24_767_458)
        #expect(try Manifest("stylegan2_paper256_D").differences(from: manifestEntries(Discriminator(.paper256, generator: RandomGenerator(seed: 9)))) == [])
        #expect(auto.numWs == 14 && StyleGAN2Config.tiny.numWs == 8)
    }
}
