// `train-viscoin`: the concept extractor Psi, the explainer Theta and the adapted mapping trained
// on a frozen classifier f and a frozen pretrained synthesis (spec viscoin.md 4-7), as one phase
// with two Adam optimizers on the training engine. Each step: real images (global batch split
// over ranks and accumulation rounds) and as many synthetic ones from the pretrained generator,
// f -> Psi -> Theta -> adapted generator -> f, every loss term (DECISIONS B11 images), the LR
// schedule of viscoin.md 7. Every --test-every steps the evaluation of the test split.
import Common
import Communication
import Datasets
import Evaluation
import Models
import NN
import SafeTensors
import TensorCore

public enum VisCoINSchedule: String, ConfigurationChoice { case viscoin, cosine, constant }
/// `fixed_w_avg`'s start: the pretrained generator's w_avg (DECISIONS B12), or zeros (the reference).
public enum WAvgInit: String, ConfigurationChoice { case pretrained, zero }

public struct VisCoINTrainingConfig: TrainingConfiguration, Equatable {
    public static let jobName = "train-viscoin"
    public static let resumeInvariants = ["batch_size", "accumulate", "concepts", "latent_channels", "classifier", "generator"]

    public var classifier = ""
    public var generator = ""
    public var data = ""
    public var run = ""
    /// Converted LPIPS-VGG weights; without them the LPIPS term is off.
    public var lpips: String? = nil
    /// FID of reconstructions at each test: a converted Inception file, or classifier:FILE.
    public var detector: String? = nil
    public var iterations = 100_000
    /// Real images per step over all ranks and accumulation rounds (as many synthetic).
    public var batchSize = 8
    public var accumulate = 1
    public var lr = 1e-4
    public var lrSchedule = VisCoINSchedule.viscoin
    public var alpha = 0.5
    public var beta = 3.0
    public var gamma = 0.1
    public var delta = 0.2
    /// cr_loss and of_loss start after this iteration.
    public var cdFidIteration = 100
    public var concepts = 256
    public var latentChannels = 512
    public var wAvgInit = WAvgInit.pretrained
    /// Augmentation of the real images: train (RandomResizedCrop + flip, the reference's), flip, none.
    public var augment = ClassifierAugmentation.train
    public var testEvery = 2000
    /// Test images evaluated at each periodic test (all by default).
    public var testImages: Int? = nil
    public var evalBatchSize = 16
    public var seed: UInt64 = 0
    public var workers = 1
    public var cache = false
    /// Recompute f's and LPIPS-VGG's activations on the reconstruction in the backward pass
    /// instead of keeping them (less memory, one more forward pass of each; the same values up to float rounding: the
    /// per-chunk passes may round differently from one pass over the batch).
    public var recomputeActivations = false
    public var checkpointEvery = 0
    public var keep = 3
    public var checkpointDir: String? = nil
    public var nodeLocalCheckpoints = false
    public var maxBadSteps = 20
    public var resume: String? = nil
    public var logEvery = 50
    public var maxSteps: Int? = nil
    public var force = false

    public init() {}

    public init(classifier: String, generator: String, data: String, run: String) {
        self.classifier = classifier
        self.generator = generator
        self.data = data
        self.run = run
    }

    public var weights: VisCoINWeights {
        var w = VisCoINWeights()
        (w.alpha, w.beta, w.gamma, w.delta, w.cdFidIteration) = (Float(alpha), Float(beta), Float(gamma), Float(delta), cdFidIteration)
        return w
    }

    public func validate(worldSize: Int) throws {
        func fail(_ message: String) -> ConfigurationError { ConfigurationError(message) }
        guard !classifier.isEmpty else { throw fail("--classifier: a classifier weight file (train-classifier's classifier.safetensors) is required") }
        guard !generator.isEmpty else { throw fail("--generator: a generator weight file (train-gan's G_ema.safetensors) is required") }
        guard !data.isEmpty else { throw fail("--data: a prepared dataset folder is required") }
        guard iterations >= 1 else { throw fail("--iterations must be at least 1, got \(iterations)") }
        guard batchSize >= 1, accumulate >= 1, batchSize % (worldSize * accumulate) == 0 else {
            throw fail("--batch-size \(batchSize) must be a positive multiple of ranks x --accumulate = \(worldSize) x \(accumulate)")
        }
        guard lr > 0 && lr.isFinite else { throw fail("--lr must be positive, got \(lr)") }
        for (flag, v) in [("--alpha", alpha), ("--beta", beta), ("--gamma", gamma), ("--delta", delta)] where !(v >= 0 && v.isFinite) {
            throw fail("\(flag) must be 0 or positive, got \(v)")
        }
        guard concepts >= 1, latentChannels >= 1 else { throw fail("--concepts and --latent-channels must be positive") }
        guard testEvery >= 1 else { throw fail("--test-every must be at least 1, got \(testEvery)") }
        if let testImages, testImages < 1 { throw fail("--test-images must be at least 1, got \(testImages)") }
        guard evalBatchSize >= 1, evalBatchSize % worldSize == 0 else { throw fail("--eval-batch-size must be a positive multiple of the \(worldSize) ranks") }
        guard workers >= 0 else { throw fail("--workers must be 0 or positive") }
    }
}

/// What a VisCoIN checkpoint restores besides tensors.
public struct VisCoINState: Codable {
    public var epoch = 0
    public var loaderBatch = 0
    public var tests: [TestRecord] = []
    public struct TestRecord: Codable {
        public var step: Int
        public var result: VisCoINEvaluationResult
    }
}

public struct VisCoINTrainingResult {
    public var steps: Int
    public var final: VisCoINEvaluationResult?
    public var report: String
}

public final class VisCoINTrainer {
    public let config: VisCoINTrainingConfig
    let communicator: any Communicator
    let log: (String) -> Void

    public init(config: VisCoINTrainingConfig, communicator: any Communicator, log: @escaping (String) -> Void = { Console.print($0) }) {
        self.config = config
        self.communicator = communicator
        self.log = log
    }

    public func run() throws -> VisCoINTrainingResult {
        var job: VisCoINJob? = nil
        let outcome = try TrainingEngine<VisCoINJob>(communicator: communicator, log: log).run(config) { config, run in
            let made = try VisCoINJob(config: config, run: run)
            job = made
            return made
        }
        return VisCoINTrainingResult(steps: outcome.steps, final: job?.finalResult, report: outcome.report)
    }
}

/// Builds the ensemble for training or evaluation from the pretrained parts.
public enum VisCoINBuilder {
    public static func load(classifier path: String) throws -> Classifier {
        let (module, _) = try ModelFile.load(path, expecting: .classifier)
        return module as! Classifier
    }

    public static func load(generator path: String) throws -> Generator {
        let (module, _) = try ModelFile.load(path, expecting: .generator)
        return module as! Generator
    }

    /// A fresh Psi, Theta and adapted mapping around a classifier and a pretrained generator
    /// (whose synthesis the adapted generator shares), seeded.
    public static func make(classifier f: Classifier, generator g: Generator, concepts: Int, latentChannels: Int, wAvgInit: WAvgInit,
                            seed: UInt64) -> VisCoINModels {
        let rng = RandomGenerator(seed: seed, stream: 0x5649_5343)
        let hidden = f.resnet.config.hiddenSizes
        let psi = ConceptExtractor(nConcepts: concepts, latentChannels: latentChannels,
                                   inputChannels: (hidden[hidden.count - 3], hidden[hidden.count - 2], hidden[hidden.count - 1]), generator: rng)
        let theta = Explainer(nConcepts: concepts, nClasses: f.classes, generator: rng)
        let gan = GeneratorAdapted(fromGAN: g, zDim: concepts, zeroWAvg: wAvgInit == .zero, generator: rng)
        return VisCoINModels(classifier: f, conceptExtractor: psi, explainer: theta, gan: gan)
    }
}

final class VisCoINJob: TrainingJob {
    let config: VisCoINTrainingConfig
    let dataset: PreparedDataset
    let models: VisCoINModels
    let pretrained: Generator
    let lpips: LPIPS?
    let detector: FeatureDetector?
    let train: DataLoader
    let test: DataLoader?
    let optimizer: Adam, ganOptimizer: Adam
    let schedule: LearningRateSchedule
    var phases: [TrainingPhase] = []
    var state = VisCoINState()
    let stepsPerEpoch: Int
    let communicator: any Communicator
    private var stream: BatchStream? = nil
    private(set) var finalResult: VisCoINEvaluationResult? = nil

    var totalSteps: Int { config.iterations }
    var imagesPerStep: Int { 2 * config.batchSize }
    var checkpointModules: [(String, Module)] {
        [("concept_extractor", models.conceptExtractor), ("explainer", models.explainer), ("mapping", models.gan.mapping)]
    }
    var checkpointOptimizers: [(String, Optimizer)] { [("optimizer", optimizer), ("gan_optimizer", ganOptimizer)] }

    init(config c: VisCoINTrainingConfig, run: TrainingRun) throws {
        config = c
        communicator = run.communicator
        dataset = try PreparedDataset(root: c.data)
        let f = try VisCoINBuilder.load(classifier: c.classifier)
        pretrained = try VisCoINBuilder.load(generator: c.generator)
        guard f.classes == dataset.classes.count else {
            throw TrainingError("\(c.classifier) has \(f.classes) classes, \(c.data) has \(dataset.classes.count)")
        }
        guard pretrained.config.resolution == dataset.resolution else {
            throw TrainingError("\(c.generator) draws \(pretrained.config.resolution)px images, \(c.data) holds \(dataset.resolution)px images")
        }
        models = VisCoINBuilder.make(classifier: f, generator: pretrained, concepts: c.concepts, latentChannels: c.latentChannels,
                                     wAvgInit: c.wAvgInit, seed: c.seed)
        lpips = try c.lpips.map { path in
            let (module, _) = try ModelFile.load(path, expecting: .lpips)
            return module as! LPIPS
        }
        lpips?.eval()
        lpips?.freeze()
        detector = try c.detector.map { try FeatureDetectors.load($0) }
        // f frozen in evaluation mode; the shared synthesis frozen but in training mode (random
        // noise); the pretrained mapping in evaluation mode (no w_avg tracking).
        f.eval()
        f.freeze()
        pretrained.freeze()
        pretrained.mapping.eval()
        models.conceptExtractor.train()
        models.explainer.train()
        models.gan.train()
        let world = run.worldSize, rank = run.rank
        let transform: ImageTransform
        switch c.augment {
        case .train: transform = .classifierTrain
        case .flip: transform = .plain(flipProbability: 0.5)
        case .none: transform = .plain(flipProbability: 0)
        }
        train = try DataLoader(dataset: dataset, splits: [.train], rank: rank, worldSize: world, options:
            LoaderOptions(batchSize: c.batchSize / (world * c.accumulate), seed: c.seed, shuffle: true, dropLast: true, transform: transform,
                          workers: c.workers, prefetch: 2, cacheDecoded: c.cache))
        test = dataset.index.count(.test) > 0 ? try DataLoader(dataset: dataset, splits: [.test], rank: rank, worldSize: world, options:
            LoaderOptions(batchSize: c.evalBatchSize / world, seed: c.seed, shuffle: false, dropLast: false,
                          transform: .plain(flipProbability: 0), workers: c.workers, prefetch: 2, cacheDecoded: c.cache)) : nil
        stepsPerEpoch = train.batchesPerEpoch / c.accumulate
        guard stepsPerEpoch >= 1 else {
            throw TrainingError("\(c.data): \(dataset.index.count(.train)) training images do not fill one global batch of \(c.batchSize)")
        }
        func named(_ prefix: String, _ module: Module) -> [(String, Tensor)] { module.namedParameters().map { (prefix + $0.0, $0.1) } }
        let psiTheta = named("concept_extractor.", models.conceptExtractor) + named("explainer.", models.explainer)
        let mapping = named("gan.mapping.", models.gan.mapping)
        optimizer = Adam([ParameterGroup(psiTheta, lr: c.lr)])
        ganOptimizer = Adam([ParameterGroup(mapping, lr: c.lr)])
        switch c.lrSchedule {
        case .viscoin: schedule = .viscoin(totalIterations: c.iterations)
        case .cosine: schedule = .cosine(totalIterations: min(c.iterations, c.maxSteps ?? Int.max), minimumFactor: 0)
        case .constant: schedule = .constant
        }
        let parallel = DataParallel(parameters: psiTheta + mapping, communicator: communicator)
        phases = [TrainingPhase(name: "viscoin", rounds: c.accumulate, optimizers: [optimizer, ganOptimizer], parallel: parallel) {
            [unowned self, unowned run] round in try self.accumulate(round, run: run)
        }]
    }

    func start(_ run: TrainingRun) throws {
        let c = config
        run.say("train-viscoin: \(dataset.index.count(.train)) training images, \(models.classes) classes, \(dataset.resolution)px, \(c.concepts) concepts, "
                + "\(run.worldSize) rank(s) x \(c.batchSize / (run.worldSize * c.accumulate)) real + as many synthetic images x \(c.accumulate) round(s), "
                + "\(run.lastStep) of \(c.iterations) iterations; LPIPS \(lpips == nil ? "off (no --lpips weights)" : "on"); FID \(detector?.label ?? "off")")
    }

    /// The position must lie in this run: a whole number of steps into an epoch of this data,
    /// in an epoch the checkpoint's step can have reached. (Epoch lengths can differ by a batch
    /// between world sizes, and a run may have changed world size on the way, so the step is
    /// not recomputed from the position.)
    func resumedStateProblems(step: Int) -> [String] {
        let perEpoch = stepsPerEpoch * config.accumulate
        if state.loaderBatch < 0 || state.loaderBatch >= perEpoch || state.loaderBatch % config.accumulate != 0 {
            return ["state.job.loader_batch: \(state.loaderBatch) is not a step boundary within an epoch of \(perEpoch) loader batches"]
        }
        if state.epoch > step {
            return ["state.job.epoch: \(state.epoch) cannot be reached in \(step) steps"]
        }
        return []
    }

    func resumeDescription() -> String { "epoch \(state.epoch + 1), batch \(state.loaderBatch / config.accumulate) of the epoch" }

    func beginStep(_ run: TrainingRun) throws {
        if stream == nil { stream = train.batches(epoch: state.epoch, from: state.loaderBatch) }
        let factor = schedule.factor(epoch: 0, iteration: run.step)
        optimizer.setLearningRates(base: [config.lr], factor: factor)
        ganOptimizer.setLearningRates(base: [config.lr], factor: factor)
    }

    /// One round: real images, as many synthetic ones, the whole objective, backward. Every
    /// random draw belongs to a sample (keyed by the step and the real image's position in the
    /// epoch), so a step does not depend on how its batch is spread over ranks and rounds.
    func accumulate(_ round: PhaseRound, run: TrainingRun) throws {
        guard let batch = try stream?.next() else { throw TrainingError("the training loader ended inside an epoch") }
        state.loaderBatch += 1
        let n = batch.count
        // One generator per (step, real image, purpose): each image of a step is distinct.
        func generators(_ purpose: UInt64, _ count: Int) -> [RandomGenerator] {
            (0..<count).map { j in
                RandomGenerator(seed: config.seed, stream: (UInt64(run.step) &* 1_000_003 &+ UInt64(batch.items[j])) &* 8 &+ purpose)
            }
        }
        let z = concatenate(generators(1, n).map { $0.normal([1, pretrained.config.zDim]) }, dim: 0)
        // The synthetic half (not differentiated: nothing trained depends on it, as the reference checks).
        let synthetic = noGrad { pretrained(z, noise: .perSample(generators(2, n))).image }
        let images = concatenate([batch.images, synthetic], dim: 0)
        let k = models.concepts, p = models.explainer.dropoutProbability
        let masks = (generators(3, n) + generators(4, n)).map { g in g.bernoulli([1, k, 3, 3], p: 1 - p) }
        let forward = VisCoINObjective.forward(models, images: images, noise: .perSample(generators(5, n) + generators(6, n)),
                                               dropoutMask: concatenate(masks, dim: 0), recompute: config.recomputeActivations)
        let terms = VisCoINObjective.losses(models, forward, images: images, labels: batch.labels, iteration: run.step, weights: config.weights, lpips: lpips,
                                            recompute: config.recomputeActivations)
        try round.backward(round.count > 1 ? terms.total / Float(round.count) : terms.total)
        for (name, value) in terms.scalars { run.statistics.report(name, value, weight: Double(images.shape[0])) }
        let agreement = VisCoINBatchMetrics(classifierLogits: forward.classes, explainerLogits: forward.explainerClasses, labels: [Int](repeating: 0, count: 2 * n))
        run.statistics.report("fidelity", agreement.fidelity, weight: Double(images.shape[0]))
    }

    var epochEnded: Bool { state.loaderBatch == stepsPerEpoch * config.accumulate }

    func afterPhases(_ run: TrainingRun) throws -> StepEvents {
        if epochEnded {
            state.epoch += 1
            state.loaderBatch = 0
            stream = nil
        }
        // As the reference: a test after the first step, then every --test-every.
        let testNow = test != nil && (run.step == 1 || run.step % config.testEvery == 0) && run.step < run.lastStep
        return testNow ? [.log, .checkpoint] : []
    }

    func logged(_ s: [String: StatisticSummary], run: TrainingRun) -> (line: String, fields: [(String, JSONValue)]) {
        func v(_ name: String) -> String { s[name].map { Console.significant($0.mean, 4) } ?? "-" }
        let lr = optimizer.groups[0].lr
        let line = "step \(run.step)/\(run.lastStep) total \(v("total_loss")) rec \(v("rec_loss")) (L1 \(v("rec_l1")) MSE \(v("rec_mse"))"
            + (lpips != nil ? " LPIPS \(v("rec_lpips"))" : "") + ") of \(v("of_loss")) cr \(v("cr_loss")) ortho \(v("ortho_loss")) gan \(v("gan_loss")) "
            + "fidelity \(s["fidelity"].map { Console.fixed(100 * $0.mean, 1) } ?? "-")% lr \(Console.significant(lr, 3))"
        var fields: [(String, JSONValue)] = [("epoch", JSONValue(state.epoch + 1)), ("lr", .double(lr))]
        for name in s.keys.sorted() { fields.append(("train_" + name, .double(s[name]!.mean))) }
        return (line, fields)
    }

    func endStep(_ run: TrainingRun, events: StepEvents) throws {
        guard events.contains(.checkpoint), let test else { return }
        let result = try VisCoINEvaluation.evaluate(models, loader: test, classNames: dataset.classes, lpips: lpips, detector: detector,
                                                    communicator: communicator, maxImages: config.testImages)
        record(result, run: run, final: false)
    }

    func record(_ r: VisCoINEvaluationResult, run: TrainingRun, final: Bool) {
        state.tests.append(.init(step: run.step, result: r))
        run.say("test\(final ? " (final)" : "") at step \(run.step): classifier \(Console.fixed(r.classifierAccuracy, 2))% explainer \(Console.fixed(r.explainerAccuracy, 2))% "
                + "fidelity \(Console.fixed(r.fidelity, 2))% L1 \(Console.fixed(r.l1, 4)) L2 \(Console.fixed(r.l2, 4))"
                + (r.lpips.map { " LPIPS \(Console.fixed($0, 4))" } ?? "") + (r.fid.map { " FID \(Console.fixed($0, 2)) (\(r.detector ?? ""))" } ?? "")
                + " (\(r.images) images)")
        var entry: [(String, JSONValue)] = [("kind", .string(final ? "final" : "test")), ("step", JSONValue(run.step))]
        if let members = (try? JSONValueEncoder().encode(r))?.objectValue {
            entry += members.filter { $0.0 != "per_class" }.map { ("test_" + $0.0, $0.1) }
        }
        run.metrics?.write(entry)
    }

    func finish(_ run: TrainingRun) throws -> ReportContent {
        if run.isRoot { try ModelFile.save(models, spec: models.spec, to: run.path("viscoin.safetensors")) }
        var final: VisCoINEvaluationResult? = nil
        if let test {
            final = try VisCoINEvaluation.evaluate(models, loader: test, classNames: dataset.classes, lpips: lpips, detector: detector, communicator: communicator)
            record(final!, run: run, final: true)
        }
        finalResult = final
        let report = try VisCoINReport.build(models: models, dataset: dataset, run: run.folder, evaluation: final, lpips: lpips,
                                             communicator: communicator, seed: config.seed)
        return report
    }
}
