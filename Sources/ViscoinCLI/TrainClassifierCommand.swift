// `viscoin train-classifier`: fine-tunes the ResNet classifier f on a prepared dataset, data
// parallel over the ranks of the job, with checkpoints, validation, a JSONL log and a report.
// The options and their defaults are those of `ClassifierTrainingConfig`.
import ArgumentParser
import Common
import Models
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
    typealias Config = ClassifierTrainingConfig
    static let defaults = Config()

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var runOptions: RunOptions<Config>

    @Option(help: "Prepared dataset folder (viscoin prepare).") var data: String
    @Option(help: "ResNet preset.") var arch = defaults.arch
    @Option(help: "Backbone weights: a converted classifier file (its resnet.* tensors).") var pretrained: String?
    @Option(help: "Training epochs.") var epochs = defaults.epochs
    @Option(help: "Global batch size (all ranks and accumulation rounds).") var batchSize = defaults.batchSize
    @Option(help: "Global batch size of validation and test.") var evalBatchSize = defaults.evalBatchSize
    @Option(help: "Gradient accumulation rounds per step.") var accumulate = defaults.accumulate
    @Option(help: "Optimizer.") var optimizer = defaults.optimizer
    @Option(help: "Learning rate.") var lr = defaults.lr
    @Option(help: "SGD momentum.") var momentum = defaults.momentum
    @Option(help: "Weight decay (decoupled for adamw).") var weightDecay = defaults.weightDecay
    @Option(help: "Adam beta1.") var beta1 = defaults.beta1
    @Option(help: "Adam beta2.") var beta2 = defaults.beta2
    @Option(help: "Adam epsilon.") var eps = defaults.eps
    @Option(help: "Learning-rate schedule.") var schedule = defaults.schedule
    @Option(help: "StepLR period in epochs.") var stepSize = defaults.stepSize
    @Option(help: "StepLR factor.") var gamma = defaults.gamma
    @Option(help: "Clip the global gradient norm to this value.") var clipGradNorm: Double?
    @Flag(help: "Batch-norm statistics over the global batch (default: per rank, as PyTorch DDP).") var syncBatchNorm = defaults.syncBatchNorm
    @Option(help: "Training augmentation: train (RandomResizedCrop + flip), flip, or none.") var augment = defaults.augment
    @Option(help: "Input size (default: the dataset's resolution).") var imageSize: Int?
    @Option(help: "Seed of the weights, the data order and the transforms.") var seed = defaults.seed
    @Option(help: "Background threads loading batches per rank.") var workers = defaults.workers
    @Flag(help: "Keep decoded images in memory.") var cache = defaults.cache

    func run() throws {
        try TrainingCommand.run(self, Config.self, runtime: runtime, dryRun: runOptions.dryRun, details: { config, comm in
            ["images per rank per round: \(config.imagesPerRound(worldSize: comm.size))"]
        }, train: { config, comm in
            _ = try ClassifierTrainer(config: config, communicator: comm).run()
        })
    }
}
