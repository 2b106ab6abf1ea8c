// `train-classifier`: fine-tunes the ResNet classifier f on a prepared dataset, as one phase on
// the training engine. Defaults follow VisCoIN (Adam, lr 1e-4, StepLR 30 / 0.1, 30 epochs);
// the validation split selects the best model (DECISIONS D28); the test split is only
// reported. The global batch size is fixed, so the data of step k is the same whatever the
// number of ranks, and a run resumes at any step on any number of ranks.
import Common
import Communication
import Datasets
import Models
import NN
import SafeTensors
import TensorCore

public enum OptimizerChoice: String, ConfigurationChoice { case adam, adamw, sgd }
public enum ClassifierSchedule: String, ConfigurationChoice { case step, cosine, constant }
/// train: RandomResizedCrop + flip; flip: horizontal flips only; none.
public enum ClassifierAugmentation: String, ConfigurationChoice { case train, flip, none }

/// The whole configuration of `train-classifier` (the CLI options derive from it).
public struct ClassifierTrainingConfig: TrainingConfiguration, Equatable {
    public static let jobName = "train-classifier"
    // The position in an epoch counts loader batches of batch_size / accumulate images, and the
    // weights must fit the model.
    public static let resumeInvariants = ["batch_size", "accumulate", "arch"]

    public var data = ""
    public var run = ""
    public var arch = ResNetArchitecture.resnet50
    public var pretrained: String? = nil
    public var epochs = 30
    /// Images per optimizer step over all ranks and accumulation rounds.
    public var batchSize = 32
    public var evalBatchSize = 64
    public var accumulate = 1
    public var optimizer = OptimizerChoice.adam
    public var lr = 1e-4
    public var momentum = 0.9
    public var weightDecay = 0.0
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var eps = 1e-8
    public var schedule = ClassifierSchedule.step
    public var stepSize = 30
    public var gamma = 0.1
    public var clipGradNorm: Double? = nil
    public var syncBatchNorm = false
    public var augment = ClassifierAugmentation.train
    public var imageSize: Int? = nil
    public var seed: UInt64 = 0
    public var workers = 1
    public var cache = false
    public var checkpointEvery = 0
    public var keep = 3
    public var checkpointDir: String? = nil
    public var nodeLocalCheckpoints = false
    public var maxBadSteps = 20
    public var resume: String? = nil
    public var logEvery = 10
    public var maxSteps: Int? = nil
    public var force = false

    public init() {}

    public init(data: String, run: String) {
        self.data = data
        self.run = run
    }

    public func validate(worldSize: Int) throws {
        func fail(_ message: String) -> ConfigurationError { ConfigurationError(message) }
        guard !data.isEmpty else { throw fail("--data: a prepared dataset folder is required") }
        guard epochs >= 1 else { throw fail("--epochs must be at least 1, got \(epochs)") }
        guard accumulate >= 1 else { throw fail("--accumulate must be at least 1, got \(accumulate)") }
        guard batchSize >= 1 else { throw fail("--batch-size must be at least 1, got \(batchSize)") }
        guard batchSize % (worldSize * accumulate) == 0 else {
            throw fail("--batch-size \(batchSize) must be divisible by ranks x --accumulate = \(worldSize) x \(accumulate)")
        }
        guard evalBatchSize >= 1, evalBatchSize % worldSize == 0 else {
            throw fail("--eval-batch-size \(evalBatchSize) must be a positive multiple of the \(worldSize) ranks")
        }
        guard lr > 0 && lr.isFinite else { throw fail("--lr must be positive, got \(lr)") }
        guard weightDecay >= 0 && weightDecay.isFinite else { throw fail("--weight-decay must be 0 or positive, got \(weightDecay)") }
        guard momentum >= 0 && momentum < 1 else { throw fail("--momentum must be in [0, 1), got \(momentum)") }
        guard (0..<1).contains(beta1), (0..<1).contains(beta2) else { throw fail("--beta1 and --beta2 must be in [0, 1)") }
        guard eps > 0 else { throw fail("--eps must be positive, got \(eps)") }
        guard stepSize >= 1 else { throw fail("--step-size must be at least 1, got \(stepSize)") }
        guard gamma > 0 && gamma.isFinite else { throw fail("--gamma must be positive, got \(gamma)") }
        if let clip = clipGradNorm, !(clip > 0 && clip.isFinite) { throw fail("--clip-grad-norm must be positive, got \(clip)") }
        if let size = imageSize, size < 8 { throw fail("--image-size must be at least 8, got \(size)") }
        guard workers >= 0 else { throw fail("--workers must be 0 or positive, got \(workers)") }
    }

    /// Images per rank per accumulation round.
    public func imagesPerRound(worldSize: Int) -> Int { batchSize / (worldSize * accumulate) }
}

/// Outcome of a classifier run (rank 0 fills the report path).
public struct ClassifierTrainingResult {
    public var steps: Int
    public var bestValidationAccuracy: Double?
    public var testAccuracy: Double?
    public var report: String
}

/// What a classifier checkpoint restores besides tensors.
public struct ClassifierState: Codable {
    public struct Best: Codable { public var accuracy: Double; public var epoch: Int }
    public struct EpochRecord: Codable { public var step: Int; public var epoch: Int; public var loss: Double?; public var accuracy: Double?; public var count: Int? }
    public var epoch = 0
    /// Loader batches consumed in the current epoch.
    public var loaderBatch = 0
    public var best: Best? = nil
    public var history: [EpochRecord] = []
}

/// Evaluation of a split: mean per-image loss, accuracy, images, confusion matrix.
public struct ClassifierEvaluation {
    public var loss: Double
    public var accuracy: Double
    public var count: Int
    public var confusion: [[Int]]
}

public final class ClassifierTrainer {
    public let config: ClassifierTrainingConfig
    let communicator: any Communicator
    let log: (String) -> Void

    public init(config: ClassifierTrainingConfig, communicator: any Communicator, log: @escaping (String) -> Void = { Console.print($0) }) {
        self.config = config
        self.communicator = communicator
        self.log = log
    }

    public func run() throws -> ClassifierTrainingResult {
        var job: ClassifierJob? = nil
        let outcome = try TrainingEngine<ClassifierJob>(communicator: communicator, log: log).run(config) { config, run in
            let made = try ClassifierJob(config: config, run: run)
            job = made
            return made
        }
        return ClassifierTrainingResult(steps: outcome.steps, bestValidationAccuracy: job?.state.best?.accuracy,
                                        testAccuracy: job?.testResult?.accuracy, report: outcome.report)
    }

    /// Index of the largest value of `row` (the first one on ties, as torch.argmax), from 0.
    static func argmax(_ row: ArraySlice<Float>) -> Int {
        row.indices.max { row[$0] < row[$1] }! - row.startIndex
    }
}

/// The classifier as a training job: one phase (cross-entropy over `accumulate` rounds of
/// loader batches), validation and the best model at epoch ends, the test at the end.
final class ClassifierJob: TrainingJob {
    let config: ClassifierTrainingConfig
    let dataset: PreparedDataset
    let classes: Int
    let size: Int
    let arch: ResNetConfig
    let model: Classifier
    let optimizer: Optimizer
    let schedule: LearningRateSchedule
    let baseRates: [Double]
    let train: DataLoader
    let validation: DataLoader?
    let test: DataLoader?
    let stepsPerEpoch: Int
    let totalSteps: Int
    var phases: [TrainingPhase] = []
    var state = ClassifierState()
    private(set) var testResult: ClassifierEvaluation? = nil
    private var stream: BatchStream? = nil
    /// Training-mode forward passes update each rank's batch-norm running statistics; rank 0's
    /// are the model's (as DDP's broadcast_buffers). Shared once before they are used.
    private var buffersShared = true
    private let communicator: any Communicator

    var imagesPerStep: Int { config.batchSize }
    var checkpointModules: [(String, Module)] { [("model", model)] }
    var checkpointOptimizers: [(String, Optimizer)] { [("optimizer", optimizer)] }

    init(config c: ClassifierTrainingConfig, run: TrainingRun) throws {
        config = c
        communicator = run.communicator
        let world = run.worldSize, rank = run.rank
        dataset = try PreparedDataset(root: c.data)
        classes = dataset.classes.count
        size = c.imageSize ?? dataset.resolution
        let transform: ImageTransform
        switch c.augment {
        case .train: transform = .classifierTrain
        case .flip: transform = .plain(flipProbability: 0.5)
        case .none: transform = .plain(flipProbability: 0)
        }
        train = try DataLoader(dataset: dataset, splits: [.train], rank: rank, worldSize: world, options:
            LoaderOptions(batchSize: c.imagesPerRound(worldSize: world), seed: c.seed, shuffle: true, dropLast: true, transform: transform,
                          outputSize: size, workers: c.workers, prefetch: 2, cacheDecoded: c.cache))
        let evalOptions = LoaderOptions(batchSize: c.evalBatchSize / world, seed: c.seed, shuffle: false, dropLast: false,
                                        transform: c.augment == .train ? .classifierTest : .plain(flipProbability: 0), outputSize: size,
                                        workers: c.workers, prefetch: 2, cacheDecoded: c.cache)
        validation = dataset.index.count(.val) > 0 ? try DataLoader(dataset: dataset, splits: [.val], rank: rank, worldSize: world, options: evalOptions) : nil
        test = dataset.index.count(.test) > 0 ? try DataLoader(dataset: dataset, splits: [.test], rank: rank, worldSize: world, options: evalOptions) : nil
        stepsPerEpoch = train.batchesPerEpoch / c.accumulate
        guard stepsPerEpoch >= 1 else {
            throw TrainingError("\(c.data): \(dataset.index.count(.train)) training images do not fill one global batch of \(c.batchSize)")
        }
        totalSteps = stepsPerEpoch * c.epochs

        arch = c.arch.config
        model = Classifier(config: arch, classes: classes, generator: RandomGenerator(seed: c.seed, stream: 0x4D4F44454C))
        if let pretrained = c.pretrained {
            let file = try SafeTensorsFile(path: pretrained)
            let report = try model.resnet.load(file: file, strict: false, prefix: "resnet.")
            guard !report.loaded.isEmpty, report.missing.isEmpty, report.wrongShape.isEmpty else {
                func named(_ list: [String]) -> String { list.isEmpty ? "" : " (" + list.prefix(3).joined(separator: "; ") + (list.count > 3 ? "; ..." : "") + ")" }
                throw TrainingError("\(pretrained): not a backbone for --arch \(c.arch): \(report.loaded.count) tensors match, "
                                    + "\(report.missing.count) missing\(named(report.missing)), \(report.wrongShape.count) of the wrong shape\(named(report.wrongShape)) "
                                    + "(expected the keys resnet.* of a converted classifier of that --arch; see `viscoin convert`)")
            }
            run.say("pretrained backbone: \(report.loaded.count) tensors from \(pretrained) (the head is freshly initialised)")
        }
        model.train()
        let parameters = model.namedParameters()
        let group = ParameterGroup(parameters, lr: c.lr, weightDecay: c.weightDecay)
        switch c.optimizer {
        case .sgd: optimizer = SGD([group], momentum: c.momentum)
        case .adam, .adamw: optimizer = Adam([group], beta1: c.beta1, beta2: c.beta2, eps: c.eps, decoupled: c.optimizer == .adamw)
        }
        baseRates = optimizer.groups.map(\.lr)
        let steps = min(totalSteps, c.maxSteps ?? Int.max)
        switch c.schedule {
        case .step: schedule = .step(every: c.stepSize, gamma: c.gamma)
        case .cosine: schedule = .cosine(totalIterations: steps, minimumFactor: 0)
        case .constant: schedule = .constant
        }
        let parallel = DataParallel(parameters: parameters, communicator: communicator)
        if c.syncBatchNorm { parallel.synchronizeBatchNorm(model) }
        phases = [TrainingPhase(name: "classifier", rounds: c.accumulate, optimizers: [optimizer], parallel: parallel,
                                clipGradNorm: c.clipGradNorm) { [unowned self, unowned run] round in
            try self.accumulate(round, run: run)
        }]
    }

    func start(_ run: TrainingRun) throws {
        run.say("train-classifier: \(dataset.index.count(.train)) training images, \(classes) classes, \(config.arch) at \(size)px, "
                + "\(run.worldSize) rank(s) x \(config.imagesPerRound(worldSize: run.worldSize)) images x \(config.accumulate) round(s) "
                + "= global batch \(config.batchSize), \(stepsPerEpoch) steps per epoch, \(run.lastStep) steps")
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
        if state.epoch > step || state.epoch > config.epochs {
            return ["state.job.epoch: \(state.epoch) cannot be reached in \(step) steps of a run of \(config.epochs) epochs"]
        }
        return []
    }

    func resumeDescription() -> String {
        "epoch \(state.epoch + 1), batch \(state.loaderBatch / config.accumulate) of the epoch"
    }

    func beginStep(_ run: TrainingRun) throws {
        if stream == nil { stream = train.batches(epoch: state.epoch, from: state.loaderBatch) }
        optimizer.setLearningRates(base: baseRates, factor: schedule.factor(epoch: state.epoch, iteration: run.step))
    }

    /// One accumulation round: a loader batch, cross-entropy, backward.
    func accumulate(_ round: PhaseRound, run: TrainingRun) throws {
        guard let batch = try stream?.next() else { throw TrainingError("the training loader ended inside an epoch") }
        let (logits, _) = model(imagenetNormalized(batch.images))
        buffersShared = false
        let loss = crossEntropy(logits, labels: batch.labels)
        try round.backward(round.count > 1 ? loss / Float(round.count) : loss)
        let values = logits.toArray()
        var correct = 0
        for j in 0..<batch.count where ClassifierTrainer.argmax(values[(j * classes)..<((j + 1) * classes)]) == batch.labels[j] { correct += 1 }
        run.statistics.report("loss", Double(loss.item()), weight: Double(batch.count))
        run.statistics.report("accuracy", Double(correct) / Double(batch.count), weight: Double(batch.count))
        state.loaderBatch += 1
    }

    /// An epoch is `stepsPerEpoch` full steps; loader batches that do not fill a last
    /// accumulation round are left out (they never reach an optimizer step).
    var epochEnded: Bool { state.loaderBatch == stepsPerEpoch * config.accumulate }

    func afterPhases(_ run: TrainingRun) throws -> StepEvents { epochEnded ? [.log, .checkpoint] : [] }

    func logged(_ s: [String: StatisticSummary], run: TrainingRun) -> (line: String, fields: [(String, JSONValue)]) {
        let loss = s["loss"]?.mean ?? .nan, accuracy = s["accuracy"]?.mean ?? .nan, lr = optimizer.groups[0].lr
        let line = "epoch \(state.epoch + 1)/\(config.epochs) step \(run.step)/\(run.lastStep) loss \(Console.fixed(loss, 4)) "
            + "acc \(Console.fixed(100 * accuracy, 1))% lr \(Console.significant(lr, 3))"
        return (line, [("epoch", JSONValue(state.epoch + 1)), ("loss", .double(loss)), ("accuracy", .double(accuracy)), ("lr", .double(lr))])
    }

    /// End of an epoch: validation, best model, next epoch.
    func endStep(_ run: TrainingRun, events: StepEvents) throws {
        guard epochEnded else { return }
        var record = ClassifierState.EpochRecord(step: run.step, epoch: state.epoch + 1)
        if let validation {
            try shareBuffers()
            let v = try evaluate(validation)
            (record.loss, record.accuracy, record.count) = (v.loss, v.accuracy, v.count)
            run.say("epoch \(state.epoch + 1): validation loss \(Console.fixed(v.loss, 4)) accuracy \(Console.fixed(100 * v.accuracy, 2))% (\(v.count) images)")
            if state.best == nil || v.accuracy > state.best!.accuracy {
                state.best = .init(accuracy: v.accuracy, epoch: state.epoch + 1)
                try exportModel("best.safetensors", run: run)
            }
        }
        var entry: [(String, JSONValue)] = [("kind", "val"), ("step", JSONValue(run.step)), ("epoch", JSONValue(record.epoch))]
        if let loss = record.loss, let accuracy = record.accuracy, let count = record.count {
            entry += [("loss", .double(loss)), ("accuracy", .double(accuracy)), ("count", JSONValue(count))]
        }
        run.metrics?.write(entry)
        state.history.append(record)
        state.epoch += 1
        state.loaderBatch = 0
        stream = nil
    }

    func willCheckpoint(_ run: TrainingRun) throws { try shareBuffers() }

    func rankState() -> JSONValue { .object([("loader_seed", .int(Int64(bitPattern: config.seed)))]) }

    func shareBuffers() throws {
        guard !buffersShared else { return }
        try DataParallel.broadcastBuffers(model, communicator: communicator)
        buffersShared = true
    }

    func exportModel(_ name: String, run: TrainingRun) throws {
        try shareBuffers()
        if run.isRoot { try ModelFile.save(model, spec: .classifier(arch, classes: classes), to: run.path(name)) }
    }

    /// Evaluates on a split (the ranks' batch-norm buffers must agree: see `shareBuffers`).
    func evaluate(_ loader: DataLoader) throws -> ClassifierEvaluation {
        model.eval()
        defer { model.train() }
        var sums = [Double](repeating: 0, count: 3 + classes * classes)  // loss, correct, count, confusion
        let stream = loader.batches(epoch: 0)
        while let batch = try stream.next() {
            let logits = noGrad { model(imagenetNormalized(batch.images)).logits }
            let logProbabilities = logits.logSoftmax(dim: 1).toArray()
            for j in 0..<batch.count where !batch.isPadding[j] {
                let row = logProbabilities[(j * classes)..<((j + 1) * classes)]
                let predicted = ClassifierTrainer.argmax(row)
                let label = batch.labels[j]
                sums[0] -= Double(row[j * classes + label])
                if predicted == label { sums[1] += 1 }
                sums[2] += 1
                sums[3 + label * classes + predicted] += 1
            }
        }
        try communicator.allReduceSum(&sums)
        let n = max(1, sums[2])
        let confusion = (0..<classes).map { r in (0..<classes).map { c in Int(sums[3 + r * classes + c]) } }
        return ClassifierEvaluation(loss: sums[0] / n, accuracy: sums[1] / n, count: Int(sums[2]), confusion: confusion)
    }

    /// The final model, then the test split with the best model (the last one without a validation split).
    func finish(_ run: TrainingRun) throws -> ReportContent {
        try exportModel("classifier.safetensors", run: run)
        if let test {
            if let best = state.best, Files.exists(run.path("best.safetensors")) {
                _ = try model.load(file: try SafeTensorsFile(path: run.path("best.safetensors")))
                run.say("test: best model of epoch \(best.epoch) (validation accuracy \(Console.fixed(100 * best.accuracy, 2))%)")
            }
            try shareBuffers()
            let t = try evaluate(test)
            testResult = t
            run.say("test: loss \(Console.fixed(t.loss, 4)) accuracy \(Console.fixed(100 * t.accuracy, 2))% (\(t.count) images)")
            run.metrics?.write([("kind", "test"), ("step", JSONValue(run.step)), ("loss", .double(t.loss)), ("accuracy", .double(t.accuracy)),
                                ("count", JSONValue(t.count))])
        }
        return report(run)
    }

    func report(_ run: TrainingRun) -> ReportContent {
        let c = config, best = state.best, test = testResult, names = dataset.classes
        var perClass: [JSONValue] = []
        if let test {
            for (i, row) in test.confusion.enumerated() {
                let total = row.reduce(0, +)
                perClass.append(.object([("class", .string(names[i])), ("images", JSONValue(total)),
                                         ("accuracy", total > 0 ? .double(Double(row[i]) / Double(total)) : .null)]))
            }
        }
        let summary: [(String, JSONValue)] = [
            ("best_validation_accuracy", best.map { .double($0.accuracy) } ?? .null), ("best_epoch", best.map { JSONValue($0.epoch) } ?? .null),
            ("test_accuracy", test.map { .double($0.accuracy) } ?? .null), ("test_loss", test.map { .double($0.loss) } ?? .null),
            ("test_images", test.map { JSONValue($0.count) } ?? .null), ("classes", .array(names.map { .string($0) })),
            ("confusion_matrix", test.map { t in .array(t.confusion.map { JSONValue($0) }) } ?? .null), ("per_class", .array(perClass)),
            ("models", .object([("final", .string(run.path("classifier.safetensors"))), ("best", best != nil ? .string(run.path("best.safetensors")) : .null)])),
        ]
        let figures: [(String, String)] = [
            ("data", c.data), ("architecture", "\(c.arch), \(classes) classes"), ("global batch", "\(c.batchSize)"),
            ("optimizer", "\(c.optimizer), lr \(c.lr), schedule \(c.schedule)"),
            ("best validation accuracy", best.map { "\(Console.fixed(100 * $0.accuracy, 2))% (epoch \($0.epoch))" } ?? "no validation split"),
            ("test accuracy", test.map { "\(Console.fixed(100 * $0.accuracy, 2))% on \($0.count) images" } ?? "no test split"),
        ]
        let entries = MetricsLog.read(run.path("metrics.jsonl"))
        return ReportContent(title: "Classifier training — \(Files.lastComponent(of: c.run))", summary: summary, keyFigures: figures) { html in
            html.lineChart(title: "Loss", xLabel: "step", yLabel: "cross-entropy",
                           series: [("train", MetricsLog.series(entries, kind: "train", y: "loss")), ("validation", MetricsLog.series(entries, kind: "val", y: "loss"))])
            html.lineChart(title: "Accuracy", xLabel: "step", yLabel: "accuracy",
                           series: [("train", MetricsLog.series(entries, kind: "train", y: "accuracy")), ("validation", MetricsLog.series(entries, kind: "val", y: "accuracy"))])
            if let test {
                html.heading("Test confusion matrix")
                html.confusionMatrix(test.confusion, classes: names)
                html.heading("Per-class test accuracy")
                html.table(header: ["class", "images", "accuracy"], rows: test.confusion.enumerated().map { i, row in
                    let total = row.reduce(0, +)
                    return [names[i], "\(total)", total > 0 ? "\(Console.fixed(100 * Double(row[i]) / Double(total), 1))%" : "-"]
                })
            }
        }
    }
}
