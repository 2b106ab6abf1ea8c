// Two real VisCoIN training iterations against the reference (viscoin_ops/train_steps_b11 and
// _no_switch: DECISIONS B11 images, LPIPS on): every forward tensor and loss term, the logged
// values, the gradients of every trained parameter, both Adam optimizers' updates (the
// explainer, without a gradient while output fidelity is off, is skipped entirely) and their
// moments; and the learning-rate schedule (viscoin.md check 8, viscoin_ops/lr_schedule).
import Common
import Models
import NN
import Testing
import TensorCore
import TestSupport
import Training

func record(_ failures: [String?], sourceLocation: SourceLocation = #_sourceLocation) {
    for f in failures.compactMap({ $0 }) { Issue.record("\(f)", sourceLocation: sourceLocation) }
}

/// The small ensemble of the viscoin_ops goldens, loaded from a case.
struct GoldenEnsemble {
    let models: VisCoINModels
    let pretrained: Generator
    let lpips: LPIPS

    init(_ golden: GoldenCase) throws {
        let m = golden.config["modules"]!
        let rc = m["classifier"]!["constructor"]!["resnet_config"]!
        func ints(_ v: JSONValue?) -> [Int] { (v?.arrayValue ?? []).compactMap { $0.intValue.map(Int.init) } }
        let resnet = ResNetConfig(embeddingSize: Int(rc["embedding_size"]!.intValue!), hiddenSizes: ints(rc["hidden_sizes"]), depths: ints(rc["depths"]))
        let rng = RandomGenerator(seed: 1)
        let f = Classifier(config: resnet, classes: Int(m["classifier"]!["constructor"]!["output_classes"]!.intValue!), generator: rng)
        let pc = m["concept_extractor"]!["constructor"]!
        let psi = ConceptExtractor(nConcepts: Int(pc["n_concepts"]!.intValue!), latentChannels: Int(pc["latent_channels"]!.intValue!),
                                   inputChannels: (Int(pc["input_channels1"]!.intValue!), Int(pc["input_channels2"]!.intValue!), Int(pc["input_channels3"]!.intValue!)),
                                   generator: rng)
        let ec = m["explainer"]!["constructor"]!
        let theta = Explainer(nConcepts: Int(ec["n_concepts"]!.intValue!), nClasses: Int(ec["n_classes"]!.intValue!), generator: rng)
        // The pretrained generator of the synthetic half (absent from the amplify and statistics
        // cases: there the adapted generator's own synthesis is built from its constructor).
        let ac = m["gan"]?["constructor"] ?? m["concept_extractor"]!["constructor"]!
        let gc = m["generator_gan"]?["constructor"] ?? ac
        var sc = StyleGAN2Config()
        sc.zDim = Int(gc["z_dim"]?.intValue ?? 16)
        sc.wDim = Int(gc["w_dim"]?.intValue ?? 32)
        sc.resolution = Int(gc["img_resolution"]?.intValue ?? 64)
        sc.mappingLayers = Int(gc["mapping_kwargs"]?["num_layers"]?.intValue ?? 2)
        sc.channelBase = Int(gc["synthesis_kwargs"]?["channel_base"]?.intValue ?? 512)
        sc.channelMax = Int(gc["synthesis_kwargs"]?["channel_max"]?.intValue ?? 32)
        let g = Generator(sc, generator: rng)
        let gan = GeneratorAdapted(synthesis: g.synthesis, zDim: Int(ac["z_dim"]?.intValue ?? pc["n_concepts"]!.intValue!), wDim: sc.wDim,
                                   coarseLayer: Int(ac["mapping_kwargs"]?["coarse_layer"]?.intValue ?? 2),
                                   midLayer: Int(ac["mapping_kwargs"]?["mid_layer"]?.intValue ?? 5), generator: rng)
        let lpips = LPIPS(generator: rng)
        var parts: [(String, Module)] = [("classifier.", f), ("concept_extractor.", psi), ("explainer.", theta)]
        if m["gan"] != nil { parts.append(("gan.", gan)) }
        if m["lpips"] != nil { parts.append(("lpips.", lpips)) }
        for (prefix, module) in parts { try module.load(golden.stateDict(keys: module.stateDict().map(\.key), prefix: prefix)) }
        if m["generator_gan"] != nil { try g.mapping.load(golden.stateDict(keys: g.mapping.stateDict().map(\.key), prefix: "generator_gan.mapping.")) }
        models = VisCoINModels(classifier: f, conceptExtractor: psi, explainer: theta, gan: gan)
        pretrained = g
        self.lpips = lpips
    }
}

@Suite struct VisCoINStepTests {
    /// `recompute`: f's and LPIPS's activations on the reconstruction recomputed in the backward
    /// pass (train-viscoin --recompute-activations) must give the same iterations.
    @Test(arguments: [("train_steps_b11", false), ("train_steps_b11_no_switch", false), ("train_steps_b11", true)])
    func twoIterationsMatchTheReference(_ name: String, recompute: Bool) throws {
        let golden = try GoldenCase("viscoin_ops/\(name)")
        record(golden.checkPgenSamples())
        let e = try GoldenEnsemble(golden)
        let m = e.models
        let h = golden.config["hyperparameters"]!
        var weights = VisCoINWeights()
        weights.alpha = Float(h["alpha"]!.doubleValue!)
        weights.beta = Float(h["beta"]!.doubleValue!)
        weights.gamma = Float(h["gamma"]!.doubleValue!)
        weights.delta = Float(h["delta"]!.doubleValue!)
        weights.cdFidIteration = Int(h["cd_fid_iteration"]!.intValue!)
        let lr = h["learning_rate"]!.doubleValue!
        // Modes: f frozen in evaluation mode; Psi, Theta and the adapted generator in training
        // mode (so the shared synthesis too, frozen); the pretrained mapping in evaluation mode.
        m.classifier.eval()
        m.classifier.freeze()
        m.gan.synthesis.freeze()
        e.pretrained.mapping.freeze()
        m.conceptExtractor.train()
        m.explainer.train()
        m.gan.train()
        e.pretrained.mapping.eval()
        func named(_ prefix: String, _ module: Module) -> [(String, Tensor)] { module.namedParameters().map { (prefix + $0.0, $0.1) } }
        let psiTheta = named("concept_extractor.", m.conceptExtractor) + named("explainer.", m.explainer)
        let mapping = named("gan.mapping.", m.gan.mapping)
        let optimizer = Adam([ParameterGroup(psiTheta, lr: lr)]), ganOptimizer = Adam([ParameterGroup(mapping, lr: lr)])
        var failures: [String?] = []
        let iterations = Int(h["iterations"]!.intValue!)
        let schedule = LearningRateSchedule.viscoin(totalIterations: iterations)
        for i in 0..<iterations {
            let tag = "@iter\(i)"
            let factor = schedule.factor(epoch: 0, iteration: i)
            optimizer.setLearningRates(base: [lr], factor: factor)
            ganOptimizer.setLearningRates(base: [lr], factor: factor)
            let real = try golden.tensor("input.real_images" + tag), labels = try golden.ints("input.labels" + tag)
            let synthetic = noGrad { e.pretrained(try! golden.tensor("input.synthetic_z" + tag), noise: .const).image }
            if golden.has("input.synthetic_images" + tag) { failures.append(golden.check("input.synthetic_images" + tag, synthetic)) }
            let all = concatenate([real, synthetic], dim: 0)
            let f = VisCoINObjective.forward(m, images: all, noise: .const, dropoutMask: try golden.tensor("input.explainer_dropout_mask" + tag),
                                             recompute: recompute)
            let t = VisCoINObjective.losses(m, f, images: all, labels: labels, iteration: i, weights: weights, lpips: e.lpips, recompute: recompute)
            t.total.backward()
            let outputs: [(String, Tensor?)] = [
                ("classes", f.classes), ("phi", f.phi), ("phi_prime", f.phiPrime), ("explainer_classes", f.explainerClasses),
                ("rebuilt_images", f.rebuilt), ("gan_latents", f.ws), ("rebuilt_classes", f.rebuiltClasses), ("acc_loss", t.acc),
                ("cr_loss", t.cr), ("of_loss", t.of), ("ortho_loss", t.ortho), ("rec_loss", t.rec), ("gan_loss", t.gan), ("total_loss", t.total),
                ("rec_loss.l1", t.l1), ("rec_loss.mse", t.mse), ("rec_loss.class_cce", t.classCCE), ("rec_loss.lpips", t.lpips),
                ("lr.optimizer", Tensor(scalar: Float(optimizer.groups[0].lr))), ("lr.gan_optimizer", Tensor(scalar: Float(ganOptimizer.groups[0].lr))),
            ]
            // _no_switch stores only its second iteration (its first equals train_steps_b11's).
            for (key, value) in outputs where golden.has("output.\(key)\(tag)") { failures.append(golden.check("output.\(key)\(tag)", value)) }
            if i == 0 {
                let logged: [(String, Tensor)] = [("acc_loss", t.acc), ("cr_loss", t.cr), ("of_loss", t.of), ("ortho_loss", t.ortho),
                                                  ("rec_loss", t.rec), ("gan_loss", t.gan),
                                                  ("inter_loss", VisCoINLoss.crossCrossEntropy(f.rebuiltClasses, f.classes))]
                for (key, value) in logged where golden.has("output.log.train_\(key)@iter0") { failures.append(golden.check("output.log.train_\(key)@iter0", value)) }
            }
            let explainerActive = i > weights.cdFidIteration
            for (key, p) in psiTheta + mapping {
                if key.hasPrefix("explainer.") && !explainerActive { #expect(p.grad == nil, "\(key) has a gradient while output fidelity is off") }
                if golden.has("grad.param.\(key)\(tag)") { failures.append(golden.check("grad.param.\(key)\(tag)", p.grad ?? Tensor.zeros(p.shape))) }
            }
            optimizer.step()
            ganOptimizer.step()
            optimizer.zeroGrad()
            ganOptimizer.zeroGrad()
            for (key, p) in psiTheta + mapping where golden.has("state_after.step\(i + 1).\(key)") {
                failures.append(golden.check("state_after.step\(i + 1).\(key)", p))
            }
        }
        let moments = Dictionary(uniqueKeysWithValues: (optimizer.stateTensors() + ganOptimizer.stateTensors()).map { ($0.0, $0.1) })
        for key in golden.keys(withPrefix: "state_after.step2.exp_avg") {
            let isSquare = key.hasPrefix("state_after.step2.exp_avg_sq.")
            let parameter = String(key.dropFirst(isSquare ? "state_after.step2.exp_avg_sq.".count : "state_after.step2.exp_avg.".count))
            failures.append(golden.check(key, moments["\(parameter).\(isSquare ? "exp_avg_sq" : "exp_avg")"]))
        }
        let steps = optimizer.stateScalars(), ganSteps = ganOptimizer.stateScalars()
        for (key, count) in golden.config["optimizers"]!["adam_step_count_after_step2"]!.objectValue! {
            // A parameter Adam never stepped has no state (count 0).
            #expect((steps[key] ?? ganSteps[key])?.intValue ?? 0 == count.intValue, "Adam steps of \(key)")
        }
        record(failures + golden.uncheckedKeys())
    }

    @Test func learningRateScheduleMatchesTheReference() throws {
        let golden = try GoldenCase("viscoin_ops/lr_schedule")
        var failures: [String?] = []
        for setting in golden.config["settings"]!.arrayValue! {
            let tag = setting["tag"]!.stringValue!, iterations = Int(setting["iterations"]!.intValue!)
            let schedule = LearningRateSchedule.viscoin(totalIterations: iterations)
            let its = try golden.tensor("input.iteration" + tag).toArray().map { Int($0) }
            let rates = its.map { Float(1e-4 * schedule.factor(epoch: 0, iteration: $0)) }
            failures.append(golden.check("output.lr.optimizer" + tag, Tensor(rates)))
            failures.append(golden.check("output.lr.gan_optimizer" + tag, Tensor(rates)))
            failures.append(golden.check("output.n_decays" + tag, Tensor(its.map { i in Float((1...max(1, i)).filter { $0 > iterations / 2 && $0 % 1000 == 0 }.count) })))
            for (i, text) in zip(its, setting["lr_float64"]!.arrayValue!) {
                let exact = Double(text.stringValue!)!
                #expect(abs(1e-4 * schedule.factor(epoch: 0, iteration: i) - exact) <= 1e-12 * exact, "lr at \(i) of \(iterations)")
            }
        }
        record(failures + golden.uncheckedKeys())
    }
}
