// `viscoin train-classifier`: fine-tunes the ResNet classifier f on a prepared dataset, data
// parallel over the ranks of the job, with checkpoints, validation, a JSONL log and a report.
import ArgumentParser
import Common
import Training

struct TrainClassifierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-classifier",
        abstract: "Train the ResNet classifier f (data parallel; resumable).",
        discussion: """
            Defaults follow VisCoIN: Adam, lr 1e-4, StepLR every 30 epochs x0.1, 30 epochs. The
            validation split selects the best model (RUN/best.safetensors); the test split is
            reported with it. RUN/ also receives classifier.safetensors (final), metrics.jsonl,
            report.json, report.html and checkpoints/ (resume with --resume latest).
            """)

    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .long, help: "Prepared dataset folder (viscoin prepare).") var data: String
    @Option(name: .customLong("run"), help: "Run folder (created).") var runDirectory: String
    @Option(name: .long, help: "resnet18, resnet34, resnet50, resnet101, narrow or tiny.") var arch = "resnet50"
    @Option(name: .long, help: "Backbone weights: a converted classifier file (its resnet.* tensors).") var pretrained: String?
    @Option(name: .long) var epochs = 30
    @Option(name: .long, help: "Global batch size (all ranks and accumulation rounds).") var batchSize = 32
    @Option(name: .long, help: "Global batch size of validation and test.") var evalBatchSize = 64
    @Option(name: .long, help: "Gradient accumulation rounds per step.") var accumulate = 1
    @Option(name: .long, help: "adam, adamw or sgd.") var optimizer = "adam"
    @Option(name: .long) var lr = 1e-4
    @Option(name: .long, help: "SGD momentum.") var momentum = 0.9
    @Option(name: .long) var weightDecay = 0.0
    @Option(name: .long, help: "step, cosine or constant.") var schedule = "step"
    @Option(name: .long, help: "StepLR period in epochs.") var stepSize = 30
    @Option(name: .long, help: "StepLR factor.") var gamma = 0.1
    @Option(name: .long, help: "Clip the global gradient norm to this value.") var clipGradNorm: Double?
    @Flag(name: .long, help: "Batch-norm statistics over the global batch (default: per rank, as PyTorch DDP).") var syncBatchNorm = false
    @Option(name: .long, help: "train (RandomResizedCrop + flip), flip, or none.") var augment = "train"
    @Option(name: .long, help: "Input size (default: the dataset's resolution).") var imageSize: Int?
    @Option(name: .long) var seed: UInt64 = 0
    @Option(name: .long, help: "Background threads loading batches per rank.") var workers = 1
    @Flag(name: .long, help: "Keep decoded images in memory.") var cache = false
    @Option(name: .long, help: "Checkpoint every N steps (0: at the end of every epoch only).") var checkpointEvery = 0
    @Option(name: .long, help: "Checkpoints kept.") var keep = 3
    @Option(name: .long, help: "latest, or a checkpoint directory.") var resume: String?
    @Option(name: .long, help: "Progress line and log entry every N steps.") var logEvery = 10
    @Option(name: .long, help: "Stop after N steps in total.") var maxSteps: Int?
    @Flag(name: .long, help: "Start over in a run folder that already has checkpoints (removes them).") var force = false
    @Flag(name: .long, help: "Print the resolved configuration and exit.") var dryRun = false

    func makeConfig() -> ClassifierTrainingConfig {
        var c = ClassifierTrainingConfig(data: data, run: runDirectory)
        c.arch = arch
        c.pretrained = pretrained
        c.epochs = epochs
        c.batchSize = batchSize
        c.evalBatchSize = evalBatchSize
        c.accumulate = accumulate
        c.optimizer = optimizer
        c.lr = lr
        c.momentum = momentum
        c.weightDecay = weightDecay
        c.schedule = schedule
        c.stepSize = stepSize
        c.gamma = gamma
        c.clipGradNorm = clipGradNorm
        c.syncBatchNorm = syncBatchNorm
        c.augment = augment
        c.imageSize = imageSize
        c.seed = seed
        c.workers = workers
        c.cache = cache
        c.checkpointEvery = checkpointEvery
        c.keep = keep
        c.resume = resume
        c.logEvery = logEvery
        c.maxSteps = maxSteps
        c.force = force
        return c
    }

    func run() throws {
        let config = makeConfig()
        let dryRun = dryRun
        try Runtime.run(threads: runtime.threads) { comm, threads in
            do {
                try config.validate(worldSize: comm.size)
            } catch let error as TrainingError {
                throw ValidationError(error.message)
            }
            if dryRun {
                if comm.isRoot {
                    Console.print(config.json.serialized(pretty: true))
                    Console.print("ranks: \(comm.size), threads per rank: \(threads), images per rank per round: "
                                  + "\(config.batchSize / (comm.size * config.accumulate))")
                }
                return
            }
            _ = try ClassifierTrainer(config: config, communicator: comm).run()
        }
    }
}
