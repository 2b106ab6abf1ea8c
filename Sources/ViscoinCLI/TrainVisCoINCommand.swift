// `viscoin train-viscoin`: the concept extractor, explainer and adapted mapping on a frozen
// classifier and a pretrained generator, data parallel and resumable, with periodic tests, a
// JSONL log, RUN/viscoin.safetensors and the report. Options and defaults: `VisCoINTrainingConfig`.
import ArgumentParser
import Common
import Training

struct TrainVisCoINCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-viscoin",
        abstract: "Train VisCoIN's concept extractor, explainer and adapted generator (data parallel; resumable).",
        discussion: """
            Defaults follow VisCoIN: 100,000 iterations of 8 real + 8 synthetic images, Adam lr 1e-4, \
            x0.8 every 1000 iterations after the halfway point, alpha 0.5, beta 3 (LPIPS, only with \
            --lpips), gamma 0.1, delta 0.2, 256 concepts. Images stay in [-1, 1]; f sees them \
            ImageNet-normalised (DECISIONS B11). RUN/ receives viscoin.safetensors, metrics.jsonl \
            (train and test values), report.html/json and checkpoints/.
            """)
    typealias Config = VisCoINTrainingConfig
    static let defaults = Config()

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var runOptions: RunOptions<Config>

    @Option(help: "Classifier weight file (train-classifier's classifier.safetensors, or converted).") var classifier: String
    @Option(help: "Generator weight file (train-gan's G_ema.safetensors, or converted).") var generator: String
    @Option(help: "Prepared dataset folder (its train split trains, its test split tests).") var data: String
    @Option(help: "Converted LPIPS-VGG weights (viscoin convert --model lpips); without them the LPIPS term is off.") var lpips: String?
    @Option(help: "FID of reconstructions at each test: a converted Inception file, or classifier:FILE.") var detector: String?
    @Option(help: "Optimizer steps.") var iterations = defaults.iterations
    @Option(help: "Real images per step over all ranks and rounds (as many synthetic ones).") var batchSize = defaults.batchSize
    @Option(help: "Gradient accumulation rounds per step.") var accumulate = defaults.accumulate
    @Option(help: "Learning rate of both optimizers.") var lr = defaults.lr
    @Option(help: "Learning-rate schedule.") var lrSchedule = defaults.lrSchedule
    @Option(help: "Output-fidelity weight.") var alpha = defaults.alpha
    @Option(help: "LPIPS weight.") var beta = defaults.beta
    @Option(help: "Weight of the reconstruction's class consistency.") var gamma = defaults.gamma
    @Option(help: "Concept-regularisation weight.") var delta = defaults.delta
    @Option(help: "Concept regularisation and output fidelity start after this iteration.") var cdFidIteration = defaults.cdFidIteration
    @Option(help: "Concepts K.") var concepts = defaults.concepts
    @Option(help: "Concept extractor's latent channels.") var latentChannels = defaults.latentChannels
    @Option(help: "Start of fixed_w_avg: the pretrained generator's w_avg, or zero (the reference).") var wAvgInit = defaults.wAvgInit
    @Option(help: "Augmentation of the real images: train (RandomResizedCrop + flip), flip, none.") var augment = defaults.augment
    @Option(help: "Test every N steps.") var testEvery = defaults.testEvery
    @Option(help: "Test images per periodic test (default: all).") var testImages: Int?
    @Option(help: "Global batch of the tests.") var evalBatchSize = defaults.evalBatchSize
    @Option(help: "Seed of the new modules, the data order and every random draw.") var seed = defaults.seed
    @Option(help: "Background threads loading batches per rank.") var workers = defaults.workers
    @Flag(help: "Keep decoded images in memory.") var cache = defaults.cache
    @Flag(help: "Recompute f's and LPIPS's activations on the reconstruction in the backward pass (about 2 GB less at 256 px and batch 8 per rank, about 10-20% slower; the same values up to float rounding, as the golden iterations check).")
    var recomputeActivations = defaults.recomputeActivations

    func run() throws {
        try TrainingCommand.run(self, Config.self, runtime: runtime, dryRun: runOptions.dryRun, details: { config, comm in
            ["real images per rank per round: \(config.batchSize / (comm.size * config.accumulate)) (+ as many synthetic)",
             "LPIPS term: \(config.lpips == nil ? "off (no --lpips)" : "on")"]
        }, train: { config, comm in
            _ = try VisCoINTrainer(config: config, communicator: comm).run()
        })
    }
}

extension VisCoINSchedule: ExpressibleByArgument {}
extension WAvgInit: ExpressibleByArgument {}
