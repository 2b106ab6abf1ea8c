// VisCoIN modules and losses against the golden reference, the full training loss of one
// iteration (every term, gradients of every trainable parameter), and the manifests.
import Models
import NN
import Testing
import TensorCore
import TestSupport

@Suite struct VisCoINModuleTests {
    let rng = RandomGenerator(seed: 11)

    @Test func conceptExtractor() throws {
        // The results are compared by runModuleCase (its own instance of the case).
        record(try GoldenCase("viscoin/concept_extractor").checkPgenSamples())
        let psi = ConceptExtractor(nConcepts: 16, latentChannels: 32, inputChannels: (64, 128, 256), generator: rng)
        record(try runModuleCase("viscoin/concept_extractor", module: psi) { _, t in
            let (phi, phiPrime) = psi(try t.get("input.h_m3"), try t.get("input.h_m2"), try t.get("input.h_m1"))
            return ["output.phi": phi, "output.phi_prime": phiPrime]
        })
    }

    @Test func explainerVariants() throws {
        let plain = Explainer(nConcepts: 16, nClasses: 9, generator: rng)
        plain.eval()
        record(try runModuleCase("viscoin/explainer_eval", module: plain) { _, t in ["output.logits": plain(try t.get("input.x"))] })
        let dropout = Explainer(nConcepts: 16, nClasses: 9, generator: rng)
        record(try runModuleCase("viscoin/explainer_train_dropout", module: dropout) { _, t in
            ["output.logits": dropout(try t.get("input.x"), dropoutMask: try t.get("input.dropout_mask"))]
        })
        let normalized = Explainer(nConcepts: 16, nClasses: 9, normalized: true, generator: rng)
        normalized.eval()
        record(try runModuleCase("viscoin/explainer_weightnorm_eval", module: normalized) { _, t in ["output.logits": normalized(try t.get("input.x"))] })
    }

    func tinySynthesis(resolution: Int) -> SynthesisNetwork {
        var config = StyleGAN2Config.tiny
        config.resolution = resolution
        return SynthesisNetwork(config, generator: rng)
    }

    @Test func generatorAdaptedTrainAndEval() throws {
        record(try GoldenCase("viscoin/generator_adapted").checkPgenSamples())
        let g = GeneratorAdapted(synthesis: tinySynthesis(resolution: 32), zDim: 16, wDim: 64, coarseLayer: 2, midLayer: 5, generator: rng)
        g.synthesis.freeze()
        record(try runModuleCase("viscoin/generator_adapted", module: g) { _, t in
            let z1 = try t.get("input.z1"), z2 = try t.get("input.z2")
            g.train()
            let (img, ws) = g(z1, z2, noise: .const)
            g.eval()
            let (imgEval, wsEval) = noGrad { g(z1.detach(), z2.detach(), noise: .const) }
            return ["output.img": img, "output.ws": ws, "output.img@eval": imgEval, "output.ws@eval": wsEval]
        })
    }
}

@Suite struct VisCoINLossTests {
    func runLoss(_ name: String, _ body: ([String: Tensor]) throws -> Tensor) throws -> [String] {
        try runOpCase("viscoin/\(name)") { _, t in ["output.loss": try body(t)] }
    }

    @Test func lossTerms() throws {
        record(try runLoss("loss_cross_cross_entropy") { VisCoINLoss.crossCrossEntropy(try $0.get("input.prediction"), try $0.get("input.target_prediction")) })
        record(try runLoss("loss_output_fidelity") { VisCoINLoss.outputFidelity(original: try $0.get("input.original_classes"), explainer: try $0.get("input.explainer_classes")) })
        record(try runLoss("loss_concept_regularization") { VisCoINLoss.conceptRegularization(try $0.get("input.phi")) })
        record(try runLoss("loss_concept_orthogonality") { VisCoINLoss.conceptOrthogonality(try $0.get("param.conv5.weight")) })
        record(try runLoss("loss_gan_regularization") { VisCoINLoss.ganRegularization(ws: try $0.get("input.gan_latents"), fixedWAvg: try $0.get("param.mapping.fixed_w_avg")) })
        record(try runLoss("loss_reconstruction_no_lpips") {
            VisCoINLoss.reconstruction(reconstructed: try $0.get("input.reconstructed"), original: try $0.get("input.original"),
                                       reconstructedLogits: try $0.get("input.reconstructed_classes"), originalLogits: try $0.get("input.original_classes"))
        })
    }

    @Test func specReferenceValues() {
        let cce = VisCoINLoss.crossCrossEntropy(Tensor([1, 2, 3, 0, 0, 0], shape: [2, 3]), Tensor([3, 2, 1, 1, 0, -1], shape: [2, 3]))
        #expect(abs(cce.item() - 1.5407143) < 1e-5)
        let pooled = Tensor.arange(64).reshaped([1, 1, 8, 8]).adaptiveAvgPool2d(3)
        #expect(pooled.toArray() == [9, 11.5, 14, 29, 31.5, 34, 49, 51.5, 54])
    }

    @Test func fullTrainingLossOfOneIteration() throws {
        let golden = try GoldenCase("viscoin/viscoin_full_training_loss")
        defer { record(golden.uncheckedKeys()) }
        record(golden.checkPgenSamples())
        let rng = RandomGenerator(seed: 12)
        let f = Classifier(config: .named("narrow")!, classes: 9, generator: rng)
        let psi = ConceptExtractor(nConcepts: 16, latentChannels: 16, inputChannels: (64, 128, 256), generator: rng)
        let theta = Explainer(nConcepts: 16, nClasses: 9, generator: rng)
        var sconfig = StyleGAN2Config.tiny
        sconfig.resolution = 64
        let gan = GeneratorAdapted(synthesis: SynthesisNetwork(sconfig, generator: rng), zDim: 16, wDim: 64, coarseLayer: 2, midLayer: 5, generator: rng)
        for (prefix, module) in [("classifier.", f as Module), ("concept_extractor.", psi), ("explainer.", theta), ("gan.", gan)] {
            try module.load(golden.stateDict(keys: module.stateDict().map(\.key), prefix: prefix))
        }
        f.eval()
        f.freeze()
        gan.synthesis.freeze()
        gan.train()
        psi.train()
        theta.train()
        let x = try golden.tensor("input.all_images")
        let labels = try golden.ints("input.labels")
        let (classes, hidden) = f(x)
        let (phi, phiPrime) = psi(hidden[2], hidden[3], hidden[4])
        let explainerClasses = theta(phi, dropoutMask: try golden.tensor("input.explainer_dropout_mask"))
        let (rebuilt, ws) = gan(phi, phiPrime, noise: .const)
        let (rebuiltClasses, _) = f(rebuilt)
        let acc = crossEntropy(classes.slice(dim: 0, start: 0, end: labels.count), labels: labels)
        let cr = VisCoINLoss.conceptRegularization(phi) * 0.2
        let of = VisCoINLoss.outputFidelity(original: classes, explainer: explainerClasses) * 0.5
        let ortho = VisCoINLoss.conceptOrthogonality(psi.conv5.weight)
        let rec = VisCoINLoss.reconstruction(reconstructed: rebuilt, original: x, reconstructedLogits: rebuiltClasses, originalLogits: classes)
        let ganLoss = VisCoINLoss.ganRegularization(ws: ws, fixedWAvg: gan.mapping.fixedWAvg)
        let total = acc + cr + of + ortho + rec + ganLoss
        total.backward()
        var failures: [String?] = [
            golden.check("output.classes", classes), golden.check("output.phi", phi), golden.check("output.phi_prime", phiPrime),
            golden.check("output.explainer_classes", explainerClasses), golden.check("output.rebuilt_images", rebuilt),
            golden.check("output.gan_latents", ws), golden.check("output.rebuilt_classes", rebuiltClasses),
            golden.check("output.acc_loss", acc), golden.check("output.cr_loss", cr), golden.check("output.of_loss", of),
            golden.check("output.ortho_loss", ortho), golden.check("output.rec_loss", rec), golden.check("output.gan_loss", ganLoss),
            golden.check("output.total_loss", total),
        ]
        for (prefix, module) in [("concept_extractor.", psi as Module), ("explainer.", theta), ("gan.", gan)] {
            let grads = parameterGrads(module)
            for key in golden.keys(withPrefix: "grad.param.\(prefix)") {
                failures.append(golden.check(key, grads[String(key.dropFirst("grad.param.\(prefix)".count))]))
            }
        }
        record(failures)
    }
}

@Suite struct VisCoINManifestTests {
    @Test func defaultModulesMatchTheirManifests() throws {
        let rng = RandomGenerator(seed: 13)
        let psi = ConceptExtractor(generator: rng)
        #expect(try Manifest("viscoin_concept_extractor_default").differences(from: manifestEntries(psi)) == [])
        #expect(psi.parameterCount == 79_500_800)
        #expect(try Manifest("viscoin_explainer_default_200classes").differences(from: manifestEntries(Explainer(nClasses: 200, generator: rng))) == [])
        var config = StyleGAN2Config.auto(resolution: 256)
        config.channelBase = 32768
        config.convClamp = nil
        let g = GeneratorAdapted(synthesis: SynthesisNetwork(config, generator: rng), wDim: 512, generator: rng)
        #expect(try Manifest("viscoin_generator_adapted_default").differences(from: manifestEntries(g)) == [])
        #expect(g.mapping.parameterCount == 16_522_752)
    }
}
