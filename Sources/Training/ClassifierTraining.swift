// `train-classifier`: fine-tunes the ResNet classifier f on a prepared dataset with data
// parallelism. Defaults follow VisCoIN (Adam, lr 1e-4, StepLR 30 / 0.1, 30 epochs); the
// validation split selects the best model (DECISIONS D28); the test split is only reported.
// Resumable from sharded checkpoints at any step, on any number of ranks; the global batch size
// is fixed, so the data of step k is the same whatever the number of ranks.
import Common
import Communication
import Datasets
import Models
import NN
import SafeTensors
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

public struct ClassifierTrainingConfig: Sendable {
    public var data: String
    public var run: String
    public var arch = "resnet50"
    public var pretrained: String? = nil
    public var epochs = 30
    /// Images per optimizer step over all ranks and accumulation rounds.
    public var batchSize = 32
    public var evalBatchSize = 64
    public var accumulate = 1
    public var optimizer = "adam"
    public var lr = 1e-4
    public var momentum = 0.9
    public var weightDecay = 0.0
    public var beta1 = 0.9, beta2 = 0.999, eps = 1e-8
    /// step | cosine | constant
    public var schedule = "step"
    public var stepSize = 30
    public var gamma = 0.1
    public var clipGradNorm: Double? = nil
    public var syncBatchNorm = false
    /// train (RandomResizedCrop + flip) | flip | none
    public var augment = "train"
    public var imageSize: Int? = nil
    public var seed: UInt64 = 0
    public var workers = 1
    public var cache = false
    /// Checkpoint every N optimizer steps (0: at the end of each epoch only).
    public var checkpointEvery = 0
    public var keep = 3
    public var resume: String? = nil
    public var logEvery = 10
    /// Stop after this many optimizer steps in total (tests, benchmarks).
    public var maxSteps: Int? = nil
    /// Start over in a run folder that has checkpoints (they are removed).
    public var force = false

    public init(data: String, run: String) {
        self.data = data
        self.run = run
    }

    public var json: JSONValue {
        .object([
            ("job", "train-classifier"), ("data", .string(data)), ("run", .string(run)), ("arch", .string(arch)),
            ("pretrained", pretrained.map { .string($0) } ?? .null), ("epochs", JSONValue(epochs)), ("batch_size", JSONValue(batchSize)),
            ("eval_batch_size", JSONValue(evalBatchSize)), ("accumulate", JSONValue(accumulate)), ("optimizer", .string(optimizer)),
            ("lr", .double(lr)), ("momentum", .double(momentum)), ("weight_decay", .double(weightDecay)), ("betas", .array([.double(beta1), .double(beta2)])),
            ("eps", .double(eps)), ("schedule", .string(schedule)), ("step_size", JSONValue(stepSize)), ("gamma", .double(gamma)),
            ("clip_grad_norm", clipGradNorm.map { .double($0) } ?? .null), ("sync_batch_norm", .bool(syncBatchNorm)),
            ("augment", .string(augment)), ("image_size", imageSize.map { JSONValue($0) } ?? .null), ("seed", .int(Int64(seed))),
            ("workers", JSONValue(workers)), ("cache", .bool(cache)), ("checkpoint_every", JSONValue(checkpointEvery)), ("keep", JSONValue(keep)),
            ("resume", resume.map { .string($0) } ?? .null), ("log_every", JSONValue(logEvery)), ("max_steps", maxSteps.map { JSONValue($0) } ?? .null), ("force", .bool(force)),
        ])
    }

    /// Checks what can be checked without the data.
    public func validate(worldSize: Int) throws {
        func fail(_ message: String) -> TrainingError { TrainingError(message) }
        guard ResNetConfig.named(arch) != nil else { throw fail("--arch \(arch): expected resnet18, resnet34, resnet50, resnet101, narrow or tiny") }
        guard epochs >= 1 else { throw fail("--epochs must be at least 1") }
        guard accumulate >= 1 else { throw fail("--accumulate must be at least 1") }
        guard batchSize % (worldSize * accumulate) == 0 else {
            throw fail("--batch-size \(batchSize) must be divisible by ranks x --accumulate = \(worldSize) x \(accumulate)")
        }
        guard evalBatchSize % worldSize == 0 else { throw fail("--eval-batch-size \(evalBatchSize) must be divisible by the \(worldSize) ranks") }
        guard ["adam", "adamw", "sgd"].contains(optimizer) else { throw fail("--optimizer \(optimizer): expected adam, adamw or sgd") }
        guard ["step", "cosine", "constant"].contains(schedule) else { throw fail("--schedule \(schedule): expected step, cosine or constant") }
        guard ["train", "flip", "none"].contains(augment) else { throw fail("--augment \(augment): expected train, flip or none") }
        guard lr > 0 && lr.isFinite else { throw fail("--lr must be positive") }
        guard keep >= 1 else { throw fail("--keep must be at least 1") }
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Outcome of a training run (rank 0 fills the report paths).
public struct ClassifierTrainingResult {
    public var steps: Int
    public var bestValidationAccuracy: Double?
    public var testAccuracy: Double?
    public var report: String
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

    var isRoot: Bool { communicator.rank == 0 }

    func say(_ message: String) { if isRoot { log(message) } }

    /// Index of the largest value of `row` (the first one on ties, as torch.argmax), from 0.
    static func argmax(_ row: ArraySlice<Float>) -> Int {
        row.indices.max { row[$0] < row[$1] }! - row.startIndex
    }

    /// Evaluates on a split: (mean per-image loss, accuracy, count, confusion matrix). The ranks'
    /// batch-norm buffers must agree (see `shareBuffers` in `run`).
    func evaluate(_ model: Classifier, _ loader: DataLoader, classes: Int) throws -> (loss: Double, accuracy: Double, count: Int, confusion: [[Int]]) {
        model.eval()
        defer { model.train() }
        var sums = [Double](repeating: 0, count: 3 + classes * classes)  // loss, correct, count, confusion
        let stream = loader.batches(epoch: 0)
        while let batch = try stream.next() {
            let logits = noGrad { model(imagenetNormalized(batch.images)).logits }
            let logProbabilities = logits.logSoftmax(dim: 1).toArray()
            for j in 0..<batch.count where !batch.isPadding[j] {
                let row = logProbabilities[(j * classes)..<((j + 1) * classes)]
                let predicted = Self.argmax(row)
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
        return (sums[0] / n, sums[1] / n, Int(sums[2]), confusion)
    }

    public func run() throws -> ClassifierTrainingResult {
        let c = config
        let world = communicator.size, rank = communicator.rank
        try c.validate(worldSize: world)
        let dataset = try PreparedDataset(root: c.data)
        let classes = dataset.classes.count
        let size = c.imageSize ?? dataset.resolution
        let perRank = c.batchSize / (world * c.accumulate)
        let transform: ImageTransform
        switch c.augment {
        case "train": transform = .classifierTrain
        case "flip": transform = .plain(flipProbability: 0.5)
        default: transform = .plain(flipProbability: 0)
        }
        let train = try DataLoader(dataset: dataset, splits: [.train], rank: rank, worldSize: world, options:
            LoaderOptions(batchSize: perRank, seed: c.seed, shuffle: true, dropLast: true, transform: transform, outputSize: size,
                          workers: c.workers, prefetch: 2, cacheDecoded: c.cache))
        let evalOptions = LoaderOptions(batchSize: c.evalBatchSize / world, seed: c.seed, shuffle: false, dropLast: false,
                                        transform: c.augment == "train" ? .classifierTest : .plain(flipProbability: 0), outputSize: size,
                                        workers: c.workers, prefetch: 2, cacheDecoded: c.cache)
        let hasValidation = dataset.index.count(.val) > 0, hasTest = dataset.index.count(.test) > 0
        let validation = hasValidation ? try DataLoader(dataset: dataset, splits: [.val], rank: rank, worldSize: world, options: evalOptions) : nil
        let test = hasTest ? try DataLoader(dataset: dataset, splits: [.test], rank: rank, worldSize: world, options: evalOptions) : nil
        let loaderBatchesPerEpoch = train.batchesPerEpoch
        let stepsPerEpoch = loaderBatchesPerEpoch / c.accumulate
        guard stepsPerEpoch >= 1 else {
            throw TrainingError("\(c.data): \(dataset.index.count(.train)) training images do not fill one global batch of \(c.batchSize)")
        }
        let totalSteps = c.maxSteps.map { min($0, stepsPerEpoch * c.epochs) } ?? stepsPerEpoch * c.epochs

        // Model, optimizer, data parallelism.
        let arch = ResNetConfig.named(c.arch)!
        let model = Classifier(config: arch, classes: classes, generator: RandomGenerator(seed: c.seed, stream: 0x4D4F44454C))
        if let pretrained = c.pretrained {
            let file = try SafeTensorsFile(path: pretrained)
            let report = try model.resnet.load(file: file, strict: false, prefix: "resnet.")
            guard !report.loaded.isEmpty, report.missing.isEmpty, report.wrongShape.isEmpty else {
                throw TrainingError("\(pretrained): not a backbone for --arch \(c.arch): \(report.loaded.count) tensors match, "
                                    + "\(report.missing.count) missing, \(report.wrongShape.count) of the wrong shape "
                                    + "(expected the keys resnet.* of a converted classifier; see `viscoin convert`)")
            }
            say("pretrained backbone: \(report.loaded.count) tensors from \(pretrained) (the head is freshly initialised)")
        }
        model.train()
        let parameters = model.namedParameters()
        let group = ParameterGroup(parameters, lr: c.lr, weightDecay: c.weightDecay)
        let optimizer: Optimizer = c.optimizer == "sgd" ? SGD([group], momentum: c.momentum)
            : Adam([group], beta1: c.beta1, beta2: c.beta2, eps: c.eps, decoupled: c.optimizer == "adamw")
        let schedule: LearningRateSchedule = c.schedule == "step" ? .step(every: c.stepSize, gamma: c.gamma)
            : c.schedule == "cosine" ? .cosine(totalIterations: totalSteps, minimumFactor: 0) : .constant
        let parallel = DataParallel(parameters: parameters, communicator: communicator)
        if c.syncBatchNorm { parallel.synchronizeBatchNorm(model) }

        // Run directory, checkpoints, resume.
        let store = CheckpointStore(directory: Files.join(c.run, "checkpoints"), keep: c.keep)
        if isRoot {
            if c.resume == nil && !store.completeCheckpoints().isEmpty {
                guard c.force else {
                    throw TrainingError("\(c.run) already has checkpoints: continue with --resume latest, start over with --force, or choose another --run")
                }
                try Files.remove(store.directory)
            }
            try Files.createDirectory(c.run)
        }
        try communicator.barrier()
        var step = 0, epoch = 0, loaderBatch = 0
        var best: (accuracy: Double, epoch: Int)? = nil
        var history: [JSONValue] = []
        var skippedSteps = 0
        if let spec = c.resume, let loaded = try store.resume(spec, communicator: communicator, log: say) {
            // The position in the epoch counts batches of batch_size / accumulate images.
            for key in ["batch_size", "accumulate"] {
                let saved = loaded.config[key]?.intValue.map(Int.init), now = c.json[key]?.intValue.map(Int.init)
                if let saved, saved != now {
                    throw TrainingError("\(loaded.path) was written with --\(key.replacing("_", with: "-")) \(saved); resume with the same value (got \(now ?? 0))")
                }
            }
            let modelTensors = Dictionary(uniqueKeysWithValues: loaded.tensors.compactMap { k, v in k.hasPrefix("model.") ? (String(k.dropFirst(6)), v) : nil })
            _ = try model.load(modelTensors, strict: true, sourceName: loaded.path)
            let optimizerTensors = Dictionary(uniqueKeysWithValues: loaded.tensors.compactMap { k, v in k.hasPrefix("optimizer.") ? (String(k.dropFirst(10)), v) : nil })
            try optimizer.loadState(tensors: optimizerTensors, scalars: loaded.state["optimizer"] ?? .null)
            step = Int(loaded.state["step"]?.intValue ?? 0)
            epoch = Int(loaded.state["epoch"]?.intValue ?? 0)
            loaderBatch = Int(loaded.state["loader_batch"]?.intValue ?? 0)
            skippedSteps = Int(loaded.state["skipped_steps"]?.intValue ?? 0)
            if let a = loaded.state["best_accuracy"]?.doubleValue, let e = loaded.state["best_epoch"]?.intValue { best = (a, Int(e)) }
            history = loaded.state["history"]?.arrayValue ?? []
            if loaded.worldSize != world {
                say("resume: checkpoint written by \(loaded.worldSize) rank(s), continuing on \(world) (same global batch; the state is replicated)")
            }
            say("resume: \(loaded.path) (step \(step), epoch \(epoch + 1), batch \(loaderBatch / c.accumulate) of the epoch)")
        }
        try DataParallel.broadcastState(model, communicator: communicator)
        let metrics = isRoot ? try MetricsLog(path: Files.join(c.run, "metrics.jsonl"), keepThrough: c.resume != nil ? step : nil) : nil
        if isRoot {
            try Files.writeAtomically(Files.join(c.run, "config.json"), text: c.json.serialized(pretty: true) + "\n")
            say("train-classifier: \(dataset.index.count(.train)) training images, \(classes) classes, \(c.arch) at \(size)px, "
                + "\(world) rank(s) x \(perRank) images x \(c.accumulate) round(s) = global batch \(c.batchSize), "
                + "\(stepsPerEpoch) steps per epoch, \(totalSteps) steps")
        }

        // Training-mode forward passes update each rank's batch-norm running statistics; rank 0's
        // are the model's (as DDP's broadcast_buffers). Shared once before they are used.
        var buffersShared = true
        func shareBuffers() throws {
            guard !buffersShared else { return }
            try DataParallel.broadcastBuffers(model, communicator: communicator)
            buffersShared = true
        }

        func checkpoint() throws {
            try shareBuffers()
            let entries = model.stateDict()
            try DataParallel.checkConsistency(entries.map { ($0.key, $0.tensor) }, communicator: communicator)
            var tensors = entries.map { ("model." + $0.key, $0.tensor, $0.isInteger) }
            tensors += optimizer.stateTensors().map { ("optimizer." + $0.0, $0.1, false) }
            let state: JSONValue = .object([
                ("step", JSONValue(step)), ("epoch", JSONValue(epoch)), ("loader_batch", JSONValue(loaderBatch)),
                ("skipped_steps", JSONValue(skippedSteps)), ("optimizer", optimizer.stateScalars()),
                ("best_accuracy", best.map { .double($0.accuracy) } ?? .null), ("best_epoch", best.map { JSONValue($0.epoch) } ?? .null),
                ("history", .array(history)),
            ])
            let path = try store.save(CheckpointContent(step: step, tensors: tensors, state: state,
                                                        rankState: .object([("rank", JSONValue(rank)), ("loader_seed", .int(Int64(c.seed)))]),
                                                        config: c.json), communicator: communicator)
            say("checkpoint: \(path) (\(Console.bytes(store.lastSave.compressed)) in \(Console.fixed(store.lastSave.seconds, 2)) s)")
        }

        func exportModel(_ name: String) throws {
            try shareBuffers()
            if isRoot { try ModelFile.save(model, spec: .classifier(arch, classes: classes), to: Files.join(c.run, name)) }
        }

        // Training.
        let baseRates = optimizer.groups.map(\.lr)
        let started = Console.now()
        var window = (loss: 0.0, correct: 0.0, count: 0.0, images: 0, start: Console.now())
        let startStep = step
        training: while epoch < c.epochs && step < totalSteps {
            let stream = train.batches(epoch: epoch, from: loaderBatch)
            var round = 0
            while let batch = try stream.next() {
                if round == 0 {
                    optimizer.setLearningRates(base: baseRates, factor: schedule.factor(epoch: epoch, iteration: step))
                }
                let (logits, _) = model(imagenetNormalized(batch.images))
                buffersShared = false
                let loss = crossEntropy(logits, labels: batch.labels)
                let scaled = c.accumulate > 1 ? loss / Float(c.accumulate) : loss
                round += 1
                try parallel.backward(scaled, reduce: round == c.accumulate)
                let values = logits.toArray()
                for j in 0..<batch.count {
                    let row = values[(j * classes)..<((j + 1) * classes)]
                    if Self.argmax(row) == batch.labels[j] { window.correct += 1 }
                }
                window.loss += Double(loss.item()) * Double(batch.count)
                window.count += Double(batch.count)
                loaderBatch += 1
                guard round == c.accumulate else { continue }
                round = 0
                if Gradients.allFinite(parameters) {
                    if let clip = c.clipGradNorm { Gradients.clipNorm(parameters, maxNorm: clip) }
                    optimizer.step()
                } else {
                    skippedSteps += 1
                    say("warning: step \(step + 1): non-finite gradient, step skipped (\(skippedSteps) so far)")
                }
                optimizer.zeroGrad()
                step += 1
                window.images += c.batchSize
                FaultInjection.maybeFail(step: step, rank: rank)

                if step % max(1, c.logEvery) == 0 || step == totalSteps || loaderBatch == loaderBatchesPerEpoch {
                    var sums = [window.loss, window.correct, window.count]
                    try communicator.allReduceSum(&sums)
                    let seconds = Console.now() - window.start
                    let rate = Double(window.images) / max(seconds, 1e-9)
                    let remaining = Double(totalSteps - step) * Double(c.batchSize) / max(rate, 1e-9)
                    let loss = sums[0] / max(1, sums[2]), accuracy = sums[1] / max(1, sums[2])
                    say("epoch \(epoch + 1)/\(c.epochs) step \(step)/\(totalSteps) loss \(Console.fixed(loss, 4)) "
                        + "acc \(Console.fixed(100 * accuracy, 1))% lr \(Console.significant(optimizer.groups[0].lr, 3)) \(Console.fixed(rate, 1)) img/s "
                        + "ETA \(Console.duration(remaining))")
                    metrics?.write([("kind", "train"), ("step", JSONValue(step)), ("epoch", JSONValue(epoch + 1)), ("loss", .double(loss)),
                                    ("accuracy", .double(accuracy)), ("lr", .double(optimizer.groups[0].lr)), ("images_per_s", .double(rate)),
                                    ("time", .double(Console.now() - started))])
                    window = (0, 0, 0, 0, Console.now())
                }
                if c.checkpointEvery > 0 && step % c.checkpointEvery == 0 && loaderBatch < loaderBatchesPerEpoch { try checkpoint() }
                if step >= totalSteps { break }
            }
            if loaderBatch < loaderBatchesPerEpoch {
                // Stopped by --max-steps mid-epoch: keep the position so the run can be continued.
                if c.checkpointEvery == 0 || step % c.checkpointEvery != 0 { try checkpoint() }
                break training
            }

            // End of epoch: validation, best model, checkpoint.
            var entry: [(String, JSONValue)] = [("kind", "val"), ("step", JSONValue(step)), ("epoch", JSONValue(epoch + 1))]
            if let validation {
                try shareBuffers()
                let v = try evaluate(model, validation, classes: classes)
                entry += [("loss", .double(v.loss)), ("accuracy", .double(v.accuracy)), ("count", JSONValue(v.count))]
                say("epoch \(epoch + 1): validation loss \(Console.fixed(v.loss, 4)) accuracy \(Console.fixed(100 * v.accuracy, 2))% (\(v.count) images)")
                if best == nil || v.accuracy > best!.accuracy {
                    best = (v.accuracy, epoch + 1)
                    try exportModel("best.safetensors")
                }
            }
            metrics?.write(entry)
            history.append(.object(entry))
            epoch += 1
            loaderBatch = 0
            try checkpoint()
        }
        let trainingSeconds = Console.now() - started
        try exportModel("classifier.safetensors")

        // Test with the best model (the last one without a validation split).
        var testResult: (loss: Double, accuracy: Double, count: Int, confusion: [[Int]])? = nil
        if let test {
            if let best, Files.exists(Files.join(c.run, "best.safetensors")) {
                let file = try SafeTensorsFile(path: Files.join(c.run, "best.safetensors"))
                _ = try model.load(file: file)
                say("test: best model of epoch \(best.epoch) (validation accuracy \(Console.fixed(100 * best.accuracy, 2))%)")
            }
            try shareBuffers()
            testResult = try evaluate(model, test, classes: classes)
            if let t = testResult {
                say("test: loss \(Console.fixed(t.loss, 4)) accuracy \(Console.fixed(100 * t.accuracy, 2))% (\(t.count) images)")
                metrics?.write([("kind", "test"), ("step", JSONValue(step)), ("loss", .double(t.loss)), ("accuracy", .double(t.accuracy)),
                                ("count", JSONValue(t.count))])
            }
        }
        var reportPath = ""
        if isRoot {
            reportPath = try writeReport(dataset: dataset, steps: step, startStep: startStep, seconds: trainingSeconds, best: best,
                                         test: testResult, skippedSteps: skippedSteps)
            say("report: \(reportPath)")
        }
        try communicator.barrier()
        return ClassifierTrainingResult(steps: step, bestValidationAccuracy: best?.accuracy, testAccuracy: testResult?.accuracy, report: reportPath)
    }

    func writeReport(dataset: PreparedDataset, steps: Int, startStep: Int, seconds: Double, best: (accuracy: Double, epoch: Int)?,
                     test: (loss: Double, accuracy: Double, count: Int, confusion: [[Int]])?, skippedSteps: Int) throws -> String {
        let c = config
        let entries = MetricsLog.read(Files.join(c.run, "metrics.jsonl"))
        func series(_ kind: String, _ x: String, _ y: String) -> [(Double, Double)] {
            entries.filter { $0["kind"]?.stringValue == kind }.compactMap { e in
                guard let xv = e[x]?.doubleValue, let yv = e[y]?.doubleValue else { return nil }
                return (xv, yv)
            }
        }
        let classes = dataset.classes
        var perClass: [JSONValue] = []
        if let test {
            for (i, row) in test.confusion.enumerated() {
                let total = row.reduce(0, +)
                perClass.append(.object([("class", .string(classes[i])), ("images", JSONValue(total)),
                                         ("accuracy", total > 0 ? .double(Double(row[i]) / Double(total)) : .null)]))
            }
        }
        var summary: [(String, JSONValue)] = [("job", "train-classifier"), ("config", c.json), ("world_size", JSONValue(communicator.size))]
        summary.append(("steps", JSONValue(steps)))
        summary.append(("training_seconds", .double(seconds)))
        let trainedImages = Double((steps - startStep) * c.batchSize)
        summary.append(("images_per_s", .double(trainedImages / max(seconds, 1e-9))))
        summary.append(("skipped_steps", JSONValue(skippedSteps)))
        summary.append(("best_validation_accuracy", best.map { .double($0.accuracy) } ?? .null))
        summary.append(("best_epoch", best.map { JSONValue($0.epoch) } ?? .null))
        summary.append(("test_accuracy", test.map { .double($0.accuracy) } ?? .null))
        summary.append(("test_loss", test.map { .double($0.loss) } ?? .null))
        summary.append(("test_images", test.map { JSONValue($0.count) } ?? .null))
        summary.append(("classes", .array(classes.map { .string($0) })))
        let confusion: JSONValue = test.map { t in .array(t.confusion.map { JSONValue($0) }) } ?? .null
        summary.append(("confusion_matrix", confusion))
        summary.append(("per_class", .array(perClass)))
        let bestModel: JSONValue = best != nil ? .string(Files.join(c.run, "best.safetensors")) : .null
        summary.append(("models", .object([("final", .string(Files.join(c.run, "classifier.safetensors"))), ("best", bestModel)])))
        try Files.writeAtomically(Files.join(c.run, "report.json"), text: JSONValue.object(summary).serialized(pretty: true) + "\n")

        var html = HTMLReport(title: "Classifier training — \(Files.lastComponent(of: c.run))")
        html.keyValues([
            ("data", c.data), ("architecture", "\(c.arch), \(classes.count) classes"), ("ranks", "\(communicator.size)"),
            ("global batch", "\(c.batchSize)"), ("optimizer", "\(c.optimizer), lr \(c.lr), schedule \(c.schedule)"),
            ("steps", "\(steps)"), ("training time", Console.duration(seconds)),
            ("best validation accuracy", best.map { "\(Console.fixed(100 * $0.accuracy, 2))% (epoch \($0.epoch))" } ?? "no validation split"),
            ("test accuracy", test.map { "\(Console.fixed(100 * $0.accuracy, 2))% on \($0.count) images" } ?? "no test split"),
            ("skipped steps (non-finite gradients)", "\(skippedSteps)"),
        ])
        html.lineChart(title: "Loss", xLabel: "step", yLabel: "cross-entropy",
                       series: [("train", series("train", "step", "loss")), ("validation", series("val", "step", "loss"))])
        html.lineChart(title: "Accuracy", xLabel: "step", yLabel: "accuracy",
                       series: [("train", series("train", "step", "accuracy")), ("validation", series("val", "step", "accuracy"))])
        if let test {
            html.heading("Test confusion matrix")
            html.confusionMatrix(test.confusion, classes: classes)
            html.heading("Per-class test accuracy")
            html.table(header: ["class", "images", "accuracy"], rows: test.confusion.enumerated().map { i, row in
                let total = row.reduce(0, +)
                return [classes[i], "\(total)", total > 0 ? "\(Console.fixed(100 * Double(row[i]) / Double(total), 1))%" : "-"]
            })
        }
        let path = Files.join(c.run, "report.html")
        try Files.writeAtomically(path, text: html.html())
        return path
    }
}

/// Test hook: `VISCOIN_FAULT_STEP=K` (with `VISCOIN_FAULT_RANK`, default 1, and
/// `VISCOIN_FAULT_ONCE=FILE`, which makes it fire only while FILE does not exist) kills this
/// rank with SIGKILL after step K, as a crashed or killed process would end.
enum FaultInjection {
    static func maybeFail(step: Int, rank: Int) {
        guard let text = environment("VISCOIN_FAULT_STEP"), let target = Int(text), target == step else { return }
        let faultRank = environment("VISCOIN_FAULT_RANK").flatMap { Int($0) } ?? 1
        guard faultRank == rank else { return }
        if let once = environment("VISCOIN_FAULT_ONCE") {
            if Files.exists(once) { return }
            try? Files.writeAtomically(once, text: "fault injected at step \(step) on rank \(rank)\n")
        }
        Console.error("fault injection: killing rank \(rank) after step \(step)")
        kill(getpid(), SIGKILL)
    }
}
