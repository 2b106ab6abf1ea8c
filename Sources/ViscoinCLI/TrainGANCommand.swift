// `viscoin train-gan`: StyleGAN2-ADA training on a prepared dataset, data parallel over the
// ranks of the job, with snapshots, FID, a JSONL log and a report. The options and their
// defaults are those of `GANTrainingConfig` (stylegan2-ada's train.py where they exist).
import ArgumentParser
import Common
import Models
import Training

struct TrainGANCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-gan",
        abstract: "Train a StyleGAN2-ADA generator (data parallel; resumable).",
        discussion: """
            As stylegan2-ada's train.py: --cfg picks the preset (auto computes batch, gamma, EMA and \
            widths from the resolution and the number of ranks; tiny is a 32x32 test network), ADA \
            adapts the augmentation probability towards --target. Every --snap ticks (of \
            --kimg-per-tick) RUN/ receives a checkpoint, G_ema-<kimg>.safetensors, fakes<kimg>.png \
            and the FID of --metrics with --detector (a converted Inception, or classifier:FILE for a \
            domain FID in a classifier's feature space). --dry-run prints the resolved settings.
            """)
    typealias Config = GANTrainingConfig
    static let defaults = Config()

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var runOptions: RunOptions<Config>

    @Option(help: "Prepared dataset folder (viscoin prepare); its training split is used.") var data: String
    @Option(help: "Preset.") var cfg = defaults.cfg
    @Option(help: "Training length in thousands of images (default: the preset's).") var kimg: Double?
    @Option(help: "Global batch size (default: the preset's).") var batch: Int?
    @Option(help: "Images per rank per accumulation round (default: the preset's split).") var batchGpu: Int?
    @Option(help: "R1 weight (default: the preset's).") var gamma: Double?
    @Option(help: "Half-life of G_ema in kimg (default: the preset's).") var emaKimg: Double?
    @Flag(help: "Double the dataset with x-flips.") var mirror = defaults.mirror
    @Option(help: "Augmentation mode.") var aug = defaults.aug
    @Option(help: "Augmentation probability for --aug fixed (and ADA's starting value).") var p: Double?
    @Option(help: "ADA target for the sign of D's real logits.") var target = defaults.target
    @Option(help: "Augmentation pipeline.") var augpipe = defaults.augpipe
    @Option(help: "Freeze-D: number of D layers (from the input) that do not train.") var freezed = defaults.freezed
    @Option(help: "Snapshot every N ticks.") var snap = defaults.snap
    @Option(help: "FID at every snapshot: fid50k_full, fid10k, fid2k, fid500, ... or none.") var metrics = defaults.metrics
    @Option(help: "FID detector: a converted Inception weight file, or classifier:FILE.") var detector: String?
    @Option(help: "Start from a converted network snapshot (tensors G.*, D.*, G_ema.*; tools/export_safetensors.py).") var resumeNetwork: String?
    @Flag(help: "Main and regularisation terms together every step (no lazy regularisation).") var noLazyReg = defaults.noLazyReg
    @Option(help: "Length of a tick in kimg.") var kimgPerTick = defaults.kimgPerTick
    @Option(help: "Images of the G_ema grid at each snapshot.") var gridSize = defaults.gridSize
    @Option(help: "Seed of the weights, the data order and every random draw.") var seed = defaults.seed
    @Flag(help: "Keep decoded training images in memory.") var cache = defaults.cache

    func run() throws {
        try TrainingCommand.run(self, Config.self, runtime: runtime, dryRun: runOptions.dryRun, details: { config, comm in
            let settings = try GANTrainer.settings(config, worldSize: comm.size)
            return ["resolved settings: " + (try JSONValueEncoder().encode(settings)).serialized(pretty: true)]
        }, train: { config, comm in
            _ = try GANTrainer(config: config, communicator: comm).run()
        })
    }
}

extension GANPreset: ExpressibleByArgument {}
extension GANAugmentation: ExpressibleByArgument {}
extension AugmentPreset: ExpressibleByArgument {}
extension GANMetric: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
