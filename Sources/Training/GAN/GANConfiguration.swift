// `train-gan`'s configuration: stylegan2-ada's train.py options that matter here, the presets
// of training.md 1 (`auto` computing its formulas from the resolution and the number of ranks,
// `tiny` = the 32x32 test network), and the resolved settings a run uses (printed by --dry-run):
// batch split, network widths, learning rates and the lazy-regularisation Adam settings.
import Common
import Models
#if canImport(Glibc)
import Glibc
#endif

public enum GANPreset: String, ConfigurationChoice { case auto, stylegan2, paper256, paper512, paper1024, tiny }
/// ada: adaptive p (target 0.6); fixed: `--p`; noaug: no augmentation.
public enum GANAugmentation: String, ConfigurationChoice { case ada, fixed, noaug }

/// `--metrics`: FID with a number of generated images at every snapshot (`fid50k_full`,
/// `fid10k`, `fid2k`, `fid500`, ...) or `none`.
public struct GANMetric: Codable, Equatable, Sendable, CustomStringConvertible {
    public let name: String
    /// Generated images (0 for none).
    public let images: Int

    public init?(_ text: String) {
        if text == "none" { (name, images) = (text, 0); return }
        var body = Substring(text)
        guard body.hasPrefix("fid") else { return nil }
        body = body.dropFirst(3)
        if body.hasSuffix("_full") { body = body.dropLast(5) }
        var scale = 1
        if body.hasSuffix("k") { scale = 1000; body = body.dropLast() }
        guard let count = Int(body), count >= 1, count * scale >= 2, count <= 1_000_000 / scale else { return nil }
        (name, images) = (text, count * scale)
    }

    public var description: String { name }
    public var isNone: Bool { images == 0 }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = GANMetric(text) else {
            throw JSONCodingError(path: "metrics", reason: "'\(text)' is not a metric: use fid50k_full, fid10k, fid2k, fid500 or none")
        }
        self = value
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}

public struct GANTrainingConfig: TrainingConfiguration, Equatable {
    public static let jobName = "train-gan"
    /// The networks and the batch composition must be those of the checkpoint.
    public static let resumeInvariants = ["cfg", "batch", "batch_gpu", "mirror", "no_lazy_reg", "freezed", "augpipe", "aug"]

    public var data = ""
    public var run = ""
    public var cfg = GANPreset.auto
    /// Training length in thousands of images (default: the preset's).
    public var kimg: Double? = nil
    /// Global batch (all ranks and accumulation rounds; default: the preset's).
    public var batch: Int? = nil
    /// Images per rank per accumulation round (default: as many as fit the preset's split).
    public var batchGpu: Int? = nil
    public var gamma: Double? = nil
    public var emaKimg: Double? = nil
    /// Dataset doubled with x-flips.
    public var mirror = false
    public var aug = GANAugmentation.ada
    /// Augmentation probability for --aug fixed (and the starting p of ada).
    public var p: Double? = nil
    public var target = 0.6
    public var augpipe = AugmentPreset.bgc
    /// Freeze-D: D layers (from the input side) that do not train.
    public var freezed = 0
    /// Network snapshot (checkpoint, G_ema file, image grid, metrics) every N ticks.
    public var snap = 50
    public var metrics = GANMetric("fid50k_full")!
    /// FID detector: a converted Inception file, or classifier:FILE for a domain FID.
    public var detector: String? = nil
    /// A converted network snapshot (tensors G.*, D.*, G_ema.*) to start from.
    public var resumeNetwork: String? = nil
    /// Run the main and regularisation terms together every step (the *both phases).
    public var noLazyReg = false
    public var kimgPerTick = 4.0
    /// Images of the G_ema grid at each snapshot.
    public var gridSize = 32
    public var seed: UInt64 = 0
    public var cache = false
    public var checkpointEvery = 0
    public var keep = 3
    public var checkpointDir: String? = nil
    public var nodeLocalCheckpoints = false
    public var maxBadSteps = 20
    public var resume: String? = nil
    /// Ticks drive the progress line; N > 0 also logs every N steps.
    public var logEvery = 0
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
        if let kimg, !(kimg > 0 && kimg.isFinite) { throw fail("--kimg must be positive, got \(kimg)") }
        if let batch, batch < 1 { throw fail("--batch must be at least 1, got \(batch)") }
        if let batchGpu, batchGpu < 1 { throw fail("--batch-gpu must be at least 1, got \(batchGpu)") }
        if let gamma, !(gamma >= 0 && gamma.isFinite) { throw fail("--gamma must be 0 or positive, got \(gamma)") }
        if let emaKimg, !(emaKimg >= 0 && emaKimg.isFinite) { throw fail("--ema-kimg must be 0 or positive, got \(emaKimg)") }
        if aug == .fixed && p == nil { throw fail("--aug fixed needs --p") }
        if let p, !(p >= 0 && p <= 1) { throw fail("--p must be in [0, 1], got \(p)") }
        guard target > 0 && target < 1 else { throw fail("--target must be in (0, 1), got \(target)") }
        guard freezed >= 0 else { throw fail("--freezed must be 0 or positive, got \(freezed)") }
        guard snap >= 1 else { throw fail("--snap must be at least 1 tick, got \(snap)") }
        guard kimgPerTick > 0 && kimgPerTick.isFinite else { throw fail("--kimg-per-tick must be positive, got \(kimgPerTick)") }
        guard gridSize >= 1 && gridSize <= 256 else { throw fail("--grid-size must be in 1...256, got \(gridSize)") }
        if !metrics.isNone && detector == nil {
            throw fail("--metrics \(metrics) needs --detector (a converted Inception file, or classifier:FILE for a domain FID); or pass --metrics none")
        }
    }
}

/// The preset's numbers (training.md 1) and what this run derives from them.
public struct GANSettings: Codable, Equatable, Sendable {
    public var preset: GANPreset
    public var resolution: Int
    public var refGpus: Int
    public var kimg: Double
    public var batch: Int
    public var batchGpu: Int
    public var rounds: Int
    public var mbstdGroup: Int
    public var channelBase: Int
    public var channelMax: Int
    public var zDim: Int
    public var wDim: Int
    public var mappingLayers: Int
    public var lr: Double
    public var gamma: Double
    public var emaKimg: Double
    public var emaRampup: Double?
    public var styleMixingProb: Double
    public var plWeight: Double
    public var gRegInterval: Int?
    public var dRegInterval: Int?
    /// Adam of G and D after the lazy-regularisation adjustment (lr, beta1, beta2).
    public var gAdam: [Double]
    public var dAdam: [Double]
    public var adaKimg: Double
    public var totalSteps: Int

    /// Resolves `config` for a dataset of this resolution on `worldSize` ranks; `resumingNetwork`
    /// turns the EMA ramp-up off and ADA's speed to 100 kimg, as train.py's --resume.
    public static func resolve(_ config: GANTrainingConfig, resolution res: Int, worldSize gpus: Int, resumingNetwork: Bool) throws -> GANSettings {
        var refGpus = 8, kimg = 25000.0, mb = 32, mbstd = 4, fmaps = 1.0, lr = 0.002, gamma = 10.0, ema = 10.0
        var ramp: Double? = nil, map = 8, zw = 512, base: Int? = nil, maxChannels = 512
        switch config.cfg {
        case .auto, .tiny:
            refGpus = gpus
            mb = max(min(gpus * min(4096 / res, 32), 64), gpus)
            mbstd = min(mb / gpus, 4)
            fmaps = res >= 512 ? 1 : 0.5
            lr = res >= 1024 ? 0.002 : 0.0025
            gamma = 0.0002 * Double(res * res) / Double(mb)
            ema = Double(mb) * 10 / 32
            ramp = 0.05
            map = 2
            if config.cfg == .tiny { (zw, base, maxChannels) = (64, 1024, 64) }
        case .stylegan2: break
        case .paper256: (mb, mbstd, fmaps, lr, gamma, ema) = (64, 8, 0.5, 0.0025, 1, 20)
        case .paper512: (mb, mbstd, fmaps, lr, gamma, ema) = (64, 8, 1, 0.0025, 0.5, 20)
        case .paper1024: (mb, mbstd, fmaps, lr, gamma, ema) = (32, 4, 1, 0.002, 2, 10)
        }
        if let k = config.kimg { kimg = k }
        if let b = config.batch { mb = b }
        if let g = config.gamma { gamma = g }
        if let e = config.emaKimg { ema = e }
        let batchGpu = config.batchGpu ?? max(1, min(mb / gpus, max(1, mb / refGpus)))
        guard mb % (gpus * batchGpu) == 0 else {
            throw ConfigurationError("--batch \(mb) must be divisible by ranks x --batch-gpu = \(gpus) x \(batchGpu)")
        }
        let group = min(mbstd, batchGpu)
        guard batchGpu % group == 0 else {
            throw ConfigurationError("--batch-gpu \(batchGpu) is not a multiple of the minibatch-std group \(group) (choose a multiple of \(mbstd))")
        }
        let gReg: Int? = config.noLazyReg ? nil : 4, dReg: Int? = config.noLazyReg ? nil : 16
        func adam(_ interval: Int?) -> [Double] {
            let ratio = interval.map { Double($0) / Double($0 + 1) } ?? 1
            return [lr * ratio, Glibc.pow(0, ratio), Glibc.pow(0.99, ratio)]
        }
        let total = Int((kimg * 1000 / Double(mb)).rounded(.up))
        return GANSettings(preset: config.cfg, resolution: res, refGpus: refGpus, kimg: kimg, batch: mb, batchGpu: batchGpu,
                           rounds: mb / (gpus * batchGpu), mbstdGroup: mbstd, channelBase: base ?? Int(fmaps * 32768), channelMax: maxChannels,
                           zDim: zw, wDim: zw, mappingLayers: map, lr: lr, gamma: gamma, emaKimg: ema, emaRampup: resumingNetwork ? nil : ramp,
                           styleMixingProb: 0.9, plWeight: 2, gRegInterval: gReg, dRegInterval: dReg, gAdam: adam(gReg), dAdam: adam(dReg),
                           adaKimg: resumingNetwork ? 100 : 500, totalSteps: max(1, total))
    }

    /// The networks' configuration.
    public func network(imageChannels: Int = 3) -> StyleGAN2Config {
        var c = StyleGAN2Config()
        c.zDim = zDim
        c.wDim = wDim
        c.resolution = resolution
        c.imageChannels = imageChannels
        c.mappingLayers = mappingLayers
        c.channelBase = channelBase
        c.channelMax = channelMax
        c.convClamp = 256
        c.mbstdGroupSize = mbstdGroup
        return c
    }

    /// EMA beta of one step (training.md 5), `imagesSeen` before the step.
    public func emaBeta(imagesSeen: Int) -> Double {
        var emaNimg = emaKimg * 1000
        if let emaRampup { emaNimg = min(emaNimg, Double(imagesSeen) * emaRampup) }
        return Glibc.pow(0.5, Double(batch) / max(emaNimg, 1e-8))
    }

    /// ADA's step of p for one adjustment (augment.md 8).
    public func adaStep(signMean: Double, target: Double) -> Double {
        let direction: Double = signMean > target ? 1 : (signMean < target ? -1 : 0)
        return direction * Double(batch * 4) / (adaKimg * 1000)
    }
}
