// `train-gan`: StyleGAN2-ADA training (training.md 2-6, augment.md 8) as a four-phase job on
// the training engine: Gmain, Greg, Dmain, Dreg with intervals 1, 4, 1, 16 (or Gboth and Dboth
// every step with --no-lazy-reg), one Adam per network with the lazy-regularisation settings,
// gradients sanitised and averaged over the global batch with one flat all-reduce per phase,
// G_ema with ramp-up, adaptive augmentation from the sign of D's real logits, kimg ticks, and
// snapshots (checkpoint, G_ema weight file, image grid, FID). Every random draw is keyed by
// (seed, step, phase, global minibatch), so the images a step sees and its noise do not depend
// on how the global batch is spread over ranks and accumulation rounds.
import Common
import Communication
import Datasets
import Evaluation
import ImageCodecs
import FeatureMetrics
import Models
import NN
import SafeTensors
import TensorCore

/// Counters and adaptive state a GAN checkpoint restores (the networks, ADA's p and the
/// optimizers are tensors).
public struct GANState: Codable {
    public var imagesSeen = 0
    public var tick = 0
    public var tickStartImages = 0
    public var tickStartTime = 0.0
    public var plMean: Float = 0
    /// Snapshots written: kimg, step, FID.
    public var snapshots: [Snapshot] = []
    public struct Snapshot: Codable {
        public var kimg: Double
        public var step: Int
        public var fid: Double?
        public var grid: String
    }
}

public struct GANTrainingResult {
    public var steps: Int
    public var fids: [Double]
    public var report: String
}

public final class GANTrainer {
    public let config: GANTrainingConfig
    let communicator: any Communicator
    let log: (String) -> Void

    public init(config: GANTrainingConfig, communicator: any Communicator, log: @escaping (String) -> Void = { Console.print($0) }) {
        self.config = config
        self.communicator = communicator
        self.log = log
    }

    public func run() throws -> GANTrainingResult {
        var job: GANJob? = nil
        let outcome = try TrainingEngine<GANJob>(communicator: communicator, log: log).run(config) { config, run in
            let made = try GANJob(config: config, run: run)
            job = made
            return made
        }
        return GANTrainingResult(steps: outcome.steps, fids: job?.state.snapshots.compactMap(\.fid) ?? [], report: outcome.report)
    }

    /// The settings a run would use (for --dry-run), from the dataset's resolution.
    public static func settings(_ config: GANTrainingConfig, worldSize: Int) throws -> GANSettings {
        let dataset = try PreparedDataset(root: config.data)
        return try GANSettings.resolve(config, resolution: dataset.resolution, worldSize: worldSize, resumingNetwork: config.resumeNetwork != nil)
    }
}

final class GANJob: TrainingJob {
    let config: GANTrainingConfig
    let settings: GANSettings
    let dataset: PreparedDataset
    /// Training images (dataset indices); with --mirror, index i >= count is item i - count flipped.
    let items: [Int]
    let G: Generator, D: Discriminator, GEma: Generator
    let augmentPipe: AugmentPipe
    let loss: StyleGAN2Loss
    let gOptimizer: Adam, dOptimizer: Adam
    var phases: [TrainingPhase] = []
    var state = GANState()
    let detector: FeatureDetector?
    var realStatistics: FeatureStatistics? = nil
    let adaStatistics = TrainingStatistics()
    let communicator: any Communicator
    private var cache: [Int: RGBImage] = [:]
    /// This step's real images, one batch per accumulation round of this rank.
    private var reals: [Tensor] = []

    var totalSteps: Int { settings.totalSteps }
    var imagesPerStep: Int { settings.batch }
    var checkpointModules: [(String, Module)] { [("G", G), ("D", D), ("G_ema", GEma), ("augment_pipe", augmentPipe)] }
    var checkpointOptimizers: [(String, Optimizer)] { [("G_opt", gOptimizer), ("D_opt", dOptimizer)] }

    init(config c: GANTrainingConfig, run: TrainingRun) throws {
        config = c
        communicator = run.communicator
        dataset = try PreparedDataset(root: c.data)
        settings = try GANSettings.resolve(c, resolution: dataset.resolution, worldSize: run.worldSize, resumingNetwork: c.resumeNetwork != nil)
        let train = dataset.index.indices(of: [.train])
        guard !train.isEmpty else { throw TrainingError("\(c.data): no training images") }
        items = train
        let network = settings.network()
        G = Generator(network, generator: RandomGenerator(seed: c.seed, stream: 0x47))
        D = Discriminator(network, freezeLayers: c.freezed, generator: RandomGenerator(seed: c.seed, stream: 0x44))
        GEma = Generator(network, generator: RandomGenerator(seed: c.seed, stream: 0x47))
        var augment = AugmentPreset.bgc.settings
        if c.aug != .noaug { augment = c.augpipe.settings } else { augment = AugmentSettings() }
        augmentPipe = AugmentPipe(augment, p: Float(c.p ?? 0))
        loss = StyleGAN2Loss(G: G, D: D, augmentPipe: c.aug == .noaug ? nil : augmentPipe, r1Gamma: Float(settings.gamma),
                             styleMixingProb: Float(settings.styleMixingProb), plWeight: Float(settings.plWeight))
        if let file = c.resumeNetwork { try Self.loadNetwork(file, into: [("G", G), ("D", D), ("G_ema", GEma)], run: run) }
        else { try GEma.load(Dictionary(uniqueKeysWithValues: G.stateDict().map { ($0.key, $0.tensor) })) }
        G.train()
        D.train()
        GEma.eval()
        let gParameters = G.namedParameters(), dParameters = D.namedParameters()
        gOptimizer = Adam([ParameterGroup(gParameters, lr: settings.gAdam[0])], beta1: settings.gAdam[1], beta2: settings.gAdam[2], eps: 1e-8)
        dOptimizer = Adam([ParameterGroup(dParameters, lr: settings.dAdam[0])], beta1: settings.dAdam[1], beta2: settings.dAdam[2], eps: 1e-8)
        detector = c.metrics.isNone ? nil : try FeatureDetectors.load(c.detector!)
        let gParallel = DataParallel(parameters: gParameters, communicator: communicator)
        let dParallel = DataParallel(parameters: dParameters, communicator: communicator)
        var list: [(StyleGAN2Phase, Int, Adam, DataParallel)] = []
        if let g = settings.gRegInterval { list += [(.Gmain, 1, gOptimizer, gParallel), (.Greg, g, gOptimizer, gParallel)] }
        else { list.append((.Gboth, 1, gOptimizer, gParallel)) }
        if let d = settings.dRegInterval { list += [(.Dmain, 1, dOptimizer, dParallel), (.Dreg, d, dOptimizer, dParallel)] }
        else { list.append((.Dboth, 1, dOptimizer, dParallel)) }
        phases = list.enumerated().map { index, entry in
            let (phase, interval, optimizer, parallel) = entry
            return TrainingPhase(name: phase.rawValue, interval: interval, rounds: settings.rounds, optimizers: [optimizer], parallel: parallel,
                                 reduction: .afterPhase, nonFinite: .sanitize) { [unowned self, unowned run] round in
                self.accumulate(phase, phaseIndex: index, interval: interval, round: round, run: run)
            }
        }
    }

    /// Copies the tensors of a converted snapshot (G.*, D.*, G_ema.*) by name, as train.py's
    /// --resume: names absent from our networks are dropped and listed.
    static func loadNetwork(_ path: String, into parts: [(String, Module)], run: TrainingRun) throws {
        let file = try SafeTensorsFile(path: path)
        var loaded = 0
        for (part, module) in parts {
            let report = try module.load(file: file, strict: false, prefix: part + ".")
            loaded += report.loaded.count
            let dropped = report.unexpected + report.wrongShape
            if !dropped.isEmpty { run.say("resume-network: \(part): \(dropped.count) tensors without a counterpart dropped: \(dropped.prefix(12).joined(separator: ", "))\(dropped.count > 12 ? ", ..." : "")") }
            if !report.missing.isEmpty { run.say("resume-network: \(part): \(report.missing.count) tensors keep their initialisation: \(report.missing.prefix(12).joined(separator: ", "))") }
        }
        guard loaded > 0 else {
            throw TrainingError("\(path): no tensor named G.*, D.* or G_ema.* fits the networks (export a network snapshot with tools/export_safetensors.py)")
        }
        run.say("resume-network: \(loaded) tensors from \(path) (counters at 0, ADA at 100 kimg, EMA ramp-up off)")
    }

    func start(_ run: TrainingRun) throws {
        let s = settings
        loss.plMean = state.plMean
        run.say("train-gan: \(items.count) training images\(config.mirror ? " (x2 mirrored)" : ""), \(s.resolution)px, cfg \(config.cfg), "
                + "G \(G.parameterCount) / D \(D.parameterCount) parameters, \(run.worldSize) rank(s) x \(s.batchGpu) images x \(s.rounds) round(s) "
                + "= batch \(s.batch), \(s.kimg) kimg = \(s.totalSteps) steps, augment \(config.aug)\(config.aug == .noaug ? "" : " \(config.augpipe)")")
        if let detector {
            // Computed once per run (all ranks), then read back on resume.
            let path = run.path("real-statistics.safetensors")
            if Files.exists(path), let cached = try? StatisticsFile.load(path, detector: detector.label) {
                realStatistics = cached
            } else {
                let started = Console.now()
                let real = try FIDPipeline.datasetStatistics(dataset, splits: [.train], detector: detector, communicator: communicator)
                if run.isRoot { try StatisticsFile.save(real, detector: detector.label, to: path) }
                realStatistics = real
                run.say("metrics: real statistics of \(real.count) images with \(detector.label) in \(Console.fixed(Console.now() - started, 1)) s")
            }
            try communicator.barrier()
        }
        if run.isRoot && !Files.exists(run.path("reals.png")) {
            let shown = (0..<min(config.gridSize, items.count)).map { items[$0] }
            if let grid = RGBImage.grid(try shown.map { try dataset.image($0) }, columns: gridColumns) { try ImageCodec.write(grid, path: run.path("reals.png")) }
        }
        // Tick timing restarts with the process (a resumed run measures its own speed).
        state.tickStartTime = run.elapsed
    }

    /// Columns of the image grids: a divisor of the image count near its square root (32 -> 8 x 4).
    var gridColumns: Int {
        let n = config.gridSize, root = Int(Double(n).squareRoot().rounded(.up))
        return (root...max(root, 2 * root)).first { n % $0 == 0 } ?? root
    }

    func resumeDescription() -> String {
        "kimg \(Console.fixed(Double(state.imagesSeen) / 1000, 1)), tick \(state.tick), augment p \(Console.significant(Double(augmentPipe.p), 3))"
    }

    // MARK: Data

    /// The dataset item of global sample k: pass k / n of a per-pass permutation (seeded).
    func item(forSample k: Int) -> (index: Int, flip: Bool) {
        let n = items.count * (config.mirror ? 2 : 1)
        let pass = k / n
        let permutation = RandomGenerator(seed: config.seed, stream: 0x5341_4D50 &+ UInt64(pass)).permutation(n)
        let i = permutation[k % n]
        return (items[i % items.count], i >= items.count)
    }

    func image(_ index: Int) throws -> RGBImage {
        if let cached = cache[index] { return cached }
        let image = try dataset.image(index)
        if config.cache { cache[index] = image }
        return image
    }

    /// This rank's real images of step `step`: round r takes global minibatch r * world + rank.
    func loadReals(step: Int, run: TrainingRun) throws -> [Tensor] {
        let b = settings.batchGpu, res = dataset.resolution
        return try (0..<settings.rounds).map { r in
            let minibatch = r * run.worldSize + run.rank
            let t = Tensor(uninitializedShape: [b, 3, res, res])
            for j in 0..<b {
                let (index, flip) = item(forSample: step * settings.batch + minibatch * b + j)
                let picture = try image(index)
                for c in 0..<3 {
                    let plane = t.data + (j * 3 + c) * res * res
                    for y in 0..<res {
                        for x in 0..<res {
                            let sx = flip ? res - 1 - x : x
                            plane[y * res + x] = Float(picture.pixels[(y * res + sx) * 3 + c]) / 127.5 - 1
                        }
                    }
                }
            }
            return t
        }
    }

    func beginStep(_ run: TrainingRun) throws {
        reals = try loadReals(step: run.step, run: run)
    }

    /// One round of a phase: its latents and draws come from (seed, step, phase, global minibatch).
    func accumulate(_ phase: StyleGAN2Phase, phaseIndex: Int, interval: Int, round: PhaseRound, run: TrainingRun) {
        let minibatch = round.index * run.worldSize + run.rank
        let key = (UInt64(run.step) &* 8 &+ UInt64(phaseIndex)) &* 4096 &+ UInt64(minibatch)
        let random = SeededStyleGAN2Randomness(seed: config.seed, key: key)
        let z = RandomGenerator(seed: config.seed, stream: key &* 8).normal([settings.batchGpu, G.config.zDim])
        // Rounds are averaged (DECISIONS A3), the phase interval is the lazy-regularisation gain.
        let gain = Float(interval) / Float(round.count)
        loss.accumulateGradients(phase, realImages: reals[round.index], genZ: z, gain: gain, random: random, report: { name, values in
            let v = values.toArray()
            run.statistics.report(name, values: v)
            if name == "Loss/signs/real" { self.adaStatistics.report(name, values: v) }
        })
    }

    // MARK: After each step

    func afterPhases(_ run: TrainingRun) throws -> StepEvents {
        try averageRunningState()
        updateEMA()
        state.plMean = loss.plMean
        state.imagesSeen += settings.batch
        if config.aug == .ada && run.step % 4 == 0 {
            let signs = try adaStatistics.collect(communicator)["Loss/signs/real"]?.mean ?? config.target
            augmentPipe.p = Float(max(Double(augmentPipe.p) + settings.adaStep(signMean: signs, target: config.target), 0))
        }
        let done = run.step >= run.lastStep
        guard done || state.tick == 0 || state.imagesSeen >= state.tickStartImages + Int(config.kimgPerTick * 1000) else { return [] }
        var events: StepEvents = [.log]
        if done || state.tick % config.snap == 0 { events.insert(.checkpoint) }
        return events
    }

    /// w_avg follows each rank's own samples (stylegan2-ada keeps one per GPU): its mean over the
    /// ranks keeps every replica identical. The path-length mean becomes the mean of the Greg
    /// rounds' new means over all rounds and ranks (see StyleGAN2Loss.plMean).
    func averageRunningState() throws {
        let means = loss.takePathLengthMeans()
        var values = (communicator.size > 1 ? G.mapping.wAvg.toArray() : []) + [Float(means.count), means.reduce(0, +)]
        if communicator.size > 1 { try communicator.allReduceSum(&values) }
        let w = G.mapping.wAvg, scale = 1 / Float(communicator.size)
        if communicator.size > 1 { for i in 0..<w.count { w.data[i] = values[i] * scale } }
        let (count, sum) = (values[values.count - 2], values[values.count - 1])
        if count > 0 { loss.plMean = sum / count }
    }

    /// p_ema <- lerp(p, p_ema, beta) (torch's lerp), buffers copied.
    func updateEMA() {
        let beta = Float(settings.emaBeta(imagesSeen: state.imagesSeen))
        let source = G.stateDict(), target = GEma.stateDict()
        for (s, t) in zip(source, target) {
            let n = s.tensor.count, src = s.tensor.data, dst = t.tensor.data
            if s.kind == .buffer {
                dst.update(from: src, count: n)
            } else if beta < 0.5 {
                for i in 0..<n { dst[i] = src[i] + beta * (dst[i] - src[i]) }
            } else {
                for i in 0..<n { dst[i] = dst[i] - (dst[i] - src[i]) * (1 - beta) }
            }
        }
    }

    func logged(_ s: [String: StatisticSummary], run: TrainingRun) -> (line: String, fields: [(String, JSONValue)]) {
        let kimg = Double(state.imagesSeen) / 1000
        let seconds = run.elapsed - state.tickStartTime
        let tickKimg = Double(state.imagesSeen - state.tickStartImages) / 1000
        // "-" for a statistic no phase of the tick reported (Dreg runs every 16 steps).
        func mean(_ name: String, _ digits: Int) -> String { s[name].map { Console.significant($0.mean, digits) } ?? "-" }
        let line = "tick \(state.tick) kimg \(Console.fixed(kimg, 1)) sec/kimg \(Console.fixed(seconds / max(tickKimg, 1e-9), 2)) "
            + "augment \(Console.fixed(Double(augmentPipe.p), 3)) G \(mean("Loss/G/loss", 4)) D \(mean("Loss/D/loss", 4)) "
            + "R1 \(mean("Loss/r1_penalty", 3)) PL \(mean("Loss/pl_penalty", 3))"
        var fields: [(String, JSONValue)] = [("Progress/tick", JSONValue(state.tick)), ("Progress/kimg", .double(kimg)),
                                             ("Progress/augment", .double(Double(augmentPipe.p))),
                                             ("Timing/sec_per_kimg", .double(seconds / max(tickKimg, 1e-9)))]
        for name in s.keys.sorted() { fields.append((name, .double(s[name]!.mean))) }
        return (line, fields)
    }

    func endStep(_ run: TrainingRun, events: StepEvents) throws {
        guard events.contains(.log) else { return }
        if events.contains(.checkpoint) { try snapshot(run) }
        state.tick += 1
        state.tickStartImages = state.imagesSeen
        state.tickStartTime = run.elapsed
    }

    /// The snapshot of a tick: the G_ema weight file and image grid, then the metric.
    func snapshot(_ run: TrainingRun) throws {
        let kimg = Double(state.imagesSeen) / 1000
        let label = String(state.imagesSeen / 1000)
        let tag = String(repeating: "0", count: max(0, 6 - label.count)) + label
        let gridName = "fakes\(tag).png"
        if run.isRoot {
            try ModelFile.save(GEma, spec: .stylegan(.generator, GEma.config), to: run.path("G_ema-\(tag).safetensors"))
            try ModelFile.save(GEma, spec: .stylegan(.generator, GEma.config), to: run.path("G_ema.safetensors"))
            let z = concatenate((0..<config.gridSize).map { RandomGenerator(seed: UInt64($0)).normal([1, GEma.config.zDim]) }, dim: 0)
            let images = noGrad { GEma(z, noise: .const).image }
            if let grid = RGBImage.grid(ImageTensors.images(fromGenerated: images), columns: gridColumns) { try ImageCodec.write(grid, path: run.path(gridName)) }
        }
        var fid: Double? = nil
        if let detector, let real = realStatistics {
            let started = Console.now()
            let fake = try FIDPipeline.generatorStatistics(GEma, count: config.metrics.images, detector: detector, batch: 16, communicator: communicator)
            fid = try FrechetDistance.compute(generated: fake, real: real).fid
            run.say("metrics: \(config.metrics) \(Console.fixed(fid!, 3)) (\(detector.label), \(fake.count) generated images, \(Console.fixed(Console.now() - started, 1)) s)")
            run.metrics?.write([("kind", "metric"), ("step", JSONValue(run.step)), ("kimg", .double(kimg)), ("metric", .string(config.metrics.name)),
                                ("fid", .double(fid!)), ("detector", .string(detector.label))])
        }
        state.snapshots.append(.init(kimg: kimg, step: run.step, fid: fid, grid: gridName))
    }

    func finish(_ run: TrainingRun) throws -> ReportContent {
        let c = config, s = settings, snapshots = state.snapshots
        let entries = MetricsLog.read(run.path("metrics.jsonl"))
        let fids = snapshots.compactMap { snap in snap.fid.map { (snap.kimg, $0) } }
        let summary: [(String, JSONValue)] = [
            ("settings", (try? JSONValueEncoder().encode(s)) ?? .null), ("kimg", .double(Double(state.imagesSeen) / 1000)),
            ("augment_p", .double(Double(augmentPipe.p))), ("detector", detector.map { .string($0.label) } ?? .null),
            ("fid", .array(fids.map { .array([.double($0.0), .double($0.1)]) })),
            ("models", .object([("G_ema", .string(run.path("G_ema.safetensors")))])),
        ]
        let figures: [(String, String)] = [
            ("data", "\(c.data) (\(items.count) training images\(c.mirror ? ", mirrored" : ""), \(s.resolution)px)"),
            ("configuration", "cfg \(c.cfg): batch \(s.batch), gamma \(Console.significant(s.gamma, 4)), EMA \(s.emaKimg) kimg, lr \(s.lr), mapping \(s.mappingLayers) layers"),
            ("augmentation", c.aug == .noaug ? "none" : "\(c.aug) \(c.augpipe), final p \(Console.fixed(Double(augmentPipe.p), 3))"),
            ("trained", "\(Console.fixed(Double(state.imagesSeen) / 1000, 1)) kimg"),
            ("FID", fids.last.map { "\(Console.fixed($0.1, 2)) at \(Console.fixed($0.0, 1)) kimg (\(c.metrics), \(detector!.label)); first \(Console.fixed(fids.first!.1, 2))" } ?? "not measured"),
        ]
        let folder = run.folder
        func series(_ key: String) -> [(Double, Double)] { MetricsLog.series(entries, kind: "train", x: "Progress/kimg", y: key) }
        return ReportContent(title: "GAN training — \(Files.lastComponent(of: c.run))", summary: summary, keyFigures: figures) { html in
            html.lineChart(title: "Losses", xLabel: "kimg", yLabel: "loss", series: [("G", series("Loss/G/loss")), ("D", series("Loss/D/loss"))])
            html.lineChart(title: "Regularisation", xLabel: "kimg", yLabel: "penalty",
                           series: [("R1", series("Loss/r1_penalty")), ("path length", series("Loss/pl_penalty"))])
            html.lineChart(title: "Augmentation probability p", xLabel: "kimg", yLabel: "p", series: [("p", series("Progress/augment"))])
            if !fids.isEmpty {
                html.lineChart(title: "FID (\(c.metrics), \(self.detector!.label))", xLabel: "kimg", yLabel: "FID", series: [("FID", fids)])
            }
            html.heading("Samples of G_ema over training (fixed seeds, constant noise)")
            let scale = max(1, 256 / max(s.resolution * self.gridColumns / 2, 1))
            if let reals = try? Files.read(Files.join(folder, "reals.png")) {
                html.image(png: reals, width: s.resolution * self.gridColumns, scale: scale, caption: "training images")
            }
            for snap in snapshots.suffix(6) {
                guard let png = try? Files.read(Files.join(folder, snap.grid)) else { continue }
                html.image(png: png, width: s.resolution * self.gridColumns, scale: scale,
                           caption: "\(Console.fixed(snap.kimg, 1)) kimg" + (snap.fid.map { ", FID \(Console.fixed($0, 2))" } ?? ""))
            }
        }
    }
}
