// The training engine every trainer plugs into. It owns what a run has besides its losses:
// the run folder, the resolved configuration (config.json), resume with fallback to the
// previous checkpoint, the checkpoint cadence and its consistency hash, the step loop over the
// job's phases, the statistics collector, the progress line, metrics.jsonl, fault injection
// and the report skeleton. A job supplies its phases, named checkpoint parts and a typed
// state, what happens around each step (data, schedules, evaluation) and its report sections.
import Common
import LinearAlgebra
import Communication
import NN
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// What the end of a step asks the engine to do.
public struct StepEvents: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Print the progress line and write a metrics entry.
    public static let log = StepEvents(rawValue: 1)
    /// Write a checkpoint (after the job's `endStep`).
    public static let checkpoint = StepEvents(rawValue: 2)
    /// End the run after this step.
    public static let stop = StepEvents(rawValue: 4)
}

/// A job's contribution to RUN/report.json and RUN/report.html.
public struct ReportContent {
    public var title: String
    /// Members of report.json after the engine's (job, config, world size, steps, time, ...).
    public var summary: [(String, JSONValue)]
    /// Rows of the key-figure table before the engine's (ranks, steps, time, skipped steps).
    public var keyFigures: [(String, String)]
    /// Charts, tables, images: drawn after the key figures.
    public var sections: (inout HTMLReport) -> Void

    public init(title: String, summary: [(String, JSONValue)] = [], keyFigures: [(String, String)] = [],
                sections: @escaping (inout HTMLReport) -> Void = { _ in }) {
        self.title = title
        self.summary = summary
        self.keyFigures = keyFigures
        self.sections = sections
    }
}

/// A trainer, as the engine sees it.
public protocol TrainingJob: AnyObject {
    associatedtype Configuration: TrainingConfiguration
    /// Everything besides tensors that a checkpoint must restore (epoch, position, best score,
    /// counters, ADA p, ...), identical on every rank.
    associatedtype State: Codable

    var config: Configuration { get }
    /// Optimizer steps of the whole run (before `--max-steps`).
    var totalSteps: Int { get }
    /// Images one step trains on over all ranks (for images/s and the ETA).
    var imagesPerStep: Int { get }
    var phases: [TrainingPhase] { get }
    /// Modules saved in checkpoints and broadcast from rank 0 at the start, by part name
    /// ("model"; "G", "D", "G_ema"): tensors are stored as `<part>.<state-dict key>`.
    var checkpointModules: [(String, Module)] { get }
    var checkpointOptimizers: [(String, Optimizer)] { get }
    var state: State { get set }

    /// This rank's own state (random streams); saved per rank.
    func rankState() -> JSONValue
    /// Restores the per-rank states of a checkpoint (written by `savedWorldSize` ranks).
    func restoreRankStates(_ states: [JSONValue], savedWorldSize: Int) throws
    /// After setup and resume, before the first step: the job's description line, caches.
    func start(_ run: TrainingRun) throws
    /// Before the phases of a step (learning rates, the step's data).
    func beginStep(_ run: TrainingRun) throws
    /// After the phases of a step (`run.step` already counts it): per-step bookkeeping (EMA,
    /// adaptive augmentation, counters) and what should happen now.
    func afterPhases(_ run: TrainingRun) throws -> StepEvents
    /// After the progress line of a step: EMA, evaluation at epoch ends, snapshots.
    func endStep(_ run: TrainingRun, events: StepEvents) throws
    /// The job's part of the progress line and of the metrics entry of a log interval.
    func logged(_ statistics: [String: StatisticSummary], run: TrainingRun) -> (line: String, fields: [(String, JSONValue)])
    /// Right before a checkpoint is written (e.g. sharing batch-norm buffers).
    func willCheckpoint(_ run: TrainingRun) throws
    /// How the resume line describes the position ("epoch 2, batch 5 of the epoch").
    func resumeDescription() -> String
    /// After a resume: what is inconsistent between the restored state and this job (data and
    /// configuration), as "field: reason"; the engine refuses the checkpoint when any.
    func resumedStateProblems(step: Int) -> [String]
    /// After the last step: final exports and evaluations; the report's content.
    func finish(_ run: TrainingRun) throws -> ReportContent
}

extension TrainingJob {
    public func rankState() -> JSONValue { .null }
    public func restoreRankStates(_ states: [JSONValue], savedWorldSize: Int) throws {}
    public func start(_ run: TrainingRun) throws {}
    public func beginStep(_ run: TrainingRun) throws {}
    public func afterPhases(_ run: TrainingRun) throws -> StepEvents { [] }
    public func endStep(_ run: TrainingRun, events: StepEvents) throws {}
    public func willCheckpoint(_ run: TrainingRun) throws {}
    public func resumeDescription() -> String { "" }
    public func resumedStateProblems(step: Int) -> [String] { [] }
}

/// The state of a run the engine shares with its job.
public final class TrainingRun {
    public let communicator: any Communicator
    public let folder: String
    public let statistics = TrainingStatistics()
    /// Optimizer steps done (the index of the next step).
    public internal(set) var step = 0
    /// The step the run (re)started at.
    public internal(set) var startStep = 0
    /// Steps skipped because a gradient was not finite.
    public internal(set) var skippedSteps = 0
    /// The last step of this run (`--max-steps` or the job's total).
    public internal(set) var lastStep = 0
    /// The checkpoint this run resumed from.
    public internal(set) var resumedFrom: LoadedCheckpoint? = nil
    /// Rank 0's metrics log.
    public internal(set) var metrics: MetricsLog? = nil
    let started = Console.now()
    let log: (String) -> Void

    init(communicator: any Communicator, folder: String, log: @escaping (String) -> Void) {
        self.communicator = communicator
        self.folder = folder
        self.log = log
    }

    public var rank: Int { communicator.rank }
    public var worldSize: Int { communicator.size }
    public var isRoot: Bool { communicator.rank == 0 }
    /// Seconds since the run started.
    public var elapsed: Double { Console.now() - started }
    /// Prints on rank 0.
    public func say(_ message: String) { if isRoot { log(message) } }
    public func path(_ name: String) -> String { Files.join(folder, name) }
}

/// The outcome of a run.
public struct TrainingOutcome {
    public var steps: Int
    /// RUN/report.html (rank 0; empty elsewhere).
    public var report: String
}

/// The state the engine itself keeps in a checkpoint.
struct EngineState: Codable {
    var step: Int
    var skippedSteps: Int
    /// The arithmetic of the products (`--precision`); absent in checkpoints written before it
    /// existed, which were float32.
    var precision: String?
}

public final class TrainingEngine<Job: TrainingJob> {
    public let communicator: any Communicator
    let log: (String) -> Void

    public init(communicator: any Communicator, log: @escaping (String) -> Void = { Console.print($0) }) {
        self.communicator = communicator
        self.log = log
    }

    /// Validates `config`, builds the job, trains it and writes the report.
    public func run(_ config: Job.Configuration, makeJob: (Job.Configuration, TrainingRun) throws -> Job) throws -> TrainingOutcome {
        try config.validateRunOptions()
        try config.validate(worldSize: communicator.size)
        do {
            try PathSafety.checkWritable(config.run, flag: "--run")
            if let directory = config.checkpointDir { try PathSafety.checkWritable(directory, flag: "--checkpoint-dir") }
        } catch let error as PathSafetyError {
            throw ConfigurationError(error.message)
        }
        let run = TrainingRun(communicator: communicator, folder: config.run, log: log)
        let job = try makeJob(config, run)
        let store = CheckpointStore(directory: config.checkpointDir ?? run.path("checkpoints"), keep: config.keep)
        if config.nodeLocalCheckpoints { try store.useNodeLocalStorage(communicator: communicator) }
        try prepareFolder(config, store: store, run: run)
        if let spec = config.resume, let loaded = try store.resume(spec, communicator: communicator, log: run.say) {
            try restore(job, from: loaded, run: run)
        }
        for (_, module) in job.checkpointModules { try DataParallel.broadcastState(module, communicator: communicator) }
        if run.isRoot {
            run.metrics = try MetricsLog(path: run.path("metrics.jsonl"), keepThrough: config.resume != nil ? run.step : nil)
            try Files.writeAtomically(run.path("config.json"), text: config.json.serialized(pretty: true) + "\n")
        }
        run.lastStep = min(job.totalSteps, config.maxSteps ?? Int.max)
        if BLAS.precision == .bf16 {
            run.say("precision: bf16 (convolutions and matrix products with bf16 operands, float32 accumulation and weights: \(BLAS.bf16Kernel)); resume with the same --precision")
        }
        StopSignals.install()
        try job.start(run)
        try train(job, store: store, run: run)
        let trainingSeconds = run.elapsed
        let content = try job.finish(run)
        var report = ""
        if run.isRoot {
            report = try writeReport(content, job: job, run: run, seconds: trainingSeconds)
            run.say("report: \(report)")
        }
        try communicator.barrier()
        return TrainingOutcome(steps: run.step, report: report)
    }

    /// Creates the run folder; checkpoints of an earlier run (in any host's folder when they are
    /// node-local) are only reused by --resume or removed by --force.
    func prepareFolder(_ config: Job.Configuration, store: CheckpointStore, run: TrainingRun) throws {
        let leads = run.rank == store.leader
        var found = leads && config.resume == nil && !store.completeCheckpoints().isEmpty
        if store.isNodeLocal && run.worldSize > 1 { found = try communicator.allReduceSum(found ? 1 : 0) > 0 }
        if found && !config.force {
            if run.isRoot {
                let place = config.checkpointDir.map { "\($0) (--checkpoint-dir)" } ?? config.run
                throw TrainingError("\(place) already has checkpoints: continue with --resume latest, start over with --force, or choose another --run")
            }
            try communicator.barrier()  // rank 0's error ends the job
        }
        if found && leads { try store.removeAll() }
        if run.isRoot { try Files.createDirectory(config.run) }
        try communicator.barrier()
    }

    // MARK: Steps

    func train(_ job: Job, store: CheckpointStore, run: TrainingRun) throws {
        let config = job.config
        var lastCheckpoint = run.resumedFrom?.step
        var window = (images: 0, start: Console.now())
        var badInARow = 0
        while run.step < run.lastStep {
            try job.beginStep(run)
            var bad = false
            for phase in job.phases where phase.isDue(step: run.step) {
                if try !phase.run() {
                    bad = true
                    run.skippedSteps += 1
                    run.say("warning: step \(run.step + 1): non-finite gradient in phase \(phase.name), step skipped (\(run.skippedSteps) so far)")
                }
            }
            badInARow = bad ? badInARow + 1 : 0
            if config.maxBadSteps > 0 && badInARow >= config.maxBadSteps {
                let last = lastCheckpoint.map { "; the last checkpoint is of step \($0)" } ?? ""
                throw TrainingError("\(badInARow) steps in a row (up to step \(run.step + 1)) had non-finite gradients: the run diverged "
                                    + "(lower --lr, check the data and the weights)\(last); --max-bad-steps \(config.maxBadSteps) stopped it")
            }
            run.step += 1
            window.images += job.imagesPerStep
            FaultInjection.maybeFail(step: run.step, rank: run.rank)

            var events = try job.afterPhases(run)
            if config.logEvery > 0 && (run.step % config.logEvery == 0 || run.step == run.lastStep) { events.insert(.log) }
            if config.checkpointEvery > 0 && run.step % config.checkpointEvery == 0 { events.insert(.checkpoint) }
            // On a stop signal the engine logs and checkpoints now; the job's own end-of-step
            // work stays on its schedule (a snapshot or a test would delay the checkpoint past a
            // scheduler's grace period).
            let stopSignal = try agreedStopSignal(run)
            var engineEvents = events
            if stopSignal != 0 { engineEvents.formUnion([.log, .checkpoint]) }
            if engineEvents.contains(.log) {
                try logProgress(job, run: run, images: window.images, seconds: Console.now() - window.start)
                window = (0, Console.now())
            }
            try job.endStep(run, events: events)
            if engineEvents.contains(.checkpoint) {
                try checkpoint(job, store: store, run: run)
                lastCheckpoint = run.step
            }
            if stopSignal != 0 {
                throw GracefulStop(status: StopSignals.exitStatus, message:
                    "stopped by \(StopSignals.name(stopSignal)) after step \(run.step) of \(run.lastStep): checkpoint \(store.directory)/\(CheckpointStore.name(step: run.step)) written; "
                    + "continue with --resume latest (exit status \(StopSignals.exitStatus))")
            }
            if events.contains(.stop) { break }
        }
        // Stopped between checkpoints (--max-steps): keep the position so the run can continue.
        if lastCheckpoint != run.step { try checkpoint(job, store: store, run: run) }
        // The final evaluations and exports are not checkpointed: a signal ends them at once.
        StopSignals.restoreDefaults()
    }

    /// The stop signal any rank received (0 if none), agreed by all ranks so that they stop at
    /// the same step: one 8-byte all-reduce per step.
    func agreedStopSignal(_ run: TrainingRun) throws -> Int32 {
        let mine = Double(StopSignals.pending)
        return Int32(run.worldSize > 1 ? try communicator.allReduceMax(mine) : mine)
    }

    func logProgress(_ job: Job, run: TrainingRun, images: Int, seconds: Double) throws {
        let statistics = try run.statistics.collect(communicator)
        let rate = Double(images) / max(seconds, 1e-9)
        let remaining = Double(run.lastStep - run.step) * Double(job.imagesPerStep) / max(rate, 1e-9)
        let (line, fields) = job.logged(statistics, run: run)
        run.say("\(line) \(Console.fixed(rate, 1)) img/s ETA \(Console.duration(remaining))")
        run.metrics?.write([("kind", "train"), ("step", JSONValue(run.step))] + fields
                           + [("images_per_s", .double(rate)), ("time", .double(run.elapsed))])
    }

    // MARK: Checkpoints

    func checkpoint(_ job: Job, store: CheckpointStore, run: TrainingRun) throws {
        try job.willCheckpoint(run)
        let parts = CheckpointParts(modules: job.checkpointModules, optimizers: job.checkpointOptimizers)
        try DataParallel.checkConsistency(parts.moduleTensors, communicator: communicator)
        let state: JSONValue = .object([
            ("engine", try JSONValueEncoder().encode(EngineState(step: run.step, skippedSteps: run.skippedSteps, precision: BLAS.precision.rawValue))),
            ("job", try JSONValueEncoder().encode(job.state)),
            ("optimizers", parts.optimizerScalars),
        ])
        let content = CheckpointContent(step: run.step, tensors: parts.tensors, state: state,
                                        rankState: .object([("rank", JSONValue(run.rank)), ("job", job.rankState())]),
                                        config: job.config.json)
        let path = try store.save(content, communicator: communicator)
        run.say("checkpoint: \(path) (\(Console.bytes(store.lastSave.compressed)) in \(Console.fixed(store.lastSave.seconds, 2)) s)")
    }

    func restore(_ job: Job, from loaded: LoadedCheckpoint, run: TrainingRun) throws {
        try CheckpointChecks.validate(loaded)
        try job.config.checkResumable(against: loaded.config, checkpoint: loaded.path)
        let parts = CheckpointParts(modules: job.checkpointModules, optimizers: job.checkpointOptimizers)
        try parts.restore(from: loaded)
        let engine = try decodeState(EngineState.self, loaded.state["engine"], loaded)
        job.state = try decodeState(Job.State.self, loaded.state["job"], loaded)
        let problems = job.resumedStateProblems(step: loaded.step)
        if !problems.isEmpty {
            throw CheckpointError(Files.join(loaded.path, "manifest.json"), "invalid state for this run: " + problems.joined(separator: "; "))
        }
        try job.restoreRankStates(loaded.rankStates.map { $0["job"] ?? .null }, savedWorldSize: loaded.worldSize)
        run.step = engine.step
        run.startStep = engine.step
        run.skippedSteps = engine.skippedSteps
        run.resumedFrom = loaded
        let savedPrecision = engine.precision ?? Precision.float32.rawValue
        if savedPrecision != BLAS.precision.rawValue {
            run.say("resume: note: the checkpoint was computed with --precision \(savedPrecision), this run continues with --precision \(BLAS.precision.rawValue): the result will not be the one an uninterrupted run gives")
        }
        if loaded.worldSize != communicator.size {
            run.say("resume: checkpoint written by \(loaded.worldSize) rank(s), continuing on \(communicator.size) (same global batch; the state is replicated)")
        }
        let position = job.resumeDescription()
        run.say("resume: \(loaded.path) (step \(run.step)\(position.isEmpty ? "" : ", " + position))")
    }

    func decodeState<T: Decodable>(_ type: T.Type, _ value: JSONValue?, _ loaded: LoadedCheckpoint) throws -> T {
        do {
            return try JSONValueDecoder().decode(type, from: value ?? .null)
        } catch {
            throw CheckpointError(Files.join(loaded.path, "manifest.json"), "trainer state: \(error)")
        }
    }

    // MARK: Report

    func writeReport(_ content: ReportContent, job: Job, run: TrainingRun, seconds: Double) throws -> String {
        let trainedImages = Double((run.step - run.startStep) * job.imagesPerStep)
        let summary: [(String, JSONValue)] = [
            ("job", .string(Job.Configuration.jobName)), ("config", job.config.json), ("world_size", JSONValue(run.worldSize)),
            ("precision", .string(BLAS.precision.rawValue)), ("steps", JSONValue(run.step)), ("training_seconds", .double(seconds)),
            ("images_per_s", .double(trainedImages / max(seconds, 1e-9))), ("skipped_steps", JSONValue(run.skippedSteps)),
        ]
        let rows: [(String, String)] = [("ranks", "\(run.worldSize)"), ("precision of the products", BLAS.precision.rawValue), ("steps", "\(run.step)"), ("training time", Console.duration(seconds)),
                                        ("skipped steps (non-finite gradients)", "\(run.skippedSteps)")]
        return try ReportWriter.write(content, folder: run.folder, summary: summary, keyFigures: rows)
    }
}

/// Writes a report's two files into a run folder: report.json (the given members, then the
/// content's) and the self-contained report.html. Returns the HTML path.
public enum ReportWriter {
    @discardableResult
    public static func write(_ content: ReportContent, folder: String, summary: [(String, JSONValue)] = [], keyFigures: [(String, String)] = []) throws -> String {
        try Files.writeAtomically(Files.join(folder, "report.json"), text: JSONValue.object(summary + content.summary).serialized(pretty: true) + "\n")
        var html = HTMLReport(title: content.title)
        html.keyValues(content.keyFigures + keyFigures)
        content.sections(&html)
        let path = Files.join(folder, "report.html")
        try Files.writeAtomically(path, text: html.html())
        return path
    }
}

/// A checkpoint built from named parts: modules (`<part>.<key>`), optimizers (`<part>.<param>.<slot>`)
/// and their scalar state. Restoring splits names at the first dot.
struct CheckpointParts {
    let modules: [(String, Module)]
    let optimizers: [(String, Optimizer)]

    init(modules: [(String, Module)], optimizers: [(String, Optimizer)]) {
        for (name, _) in modules + optimizers.map({ ($0.0, Module()) }) {
            precondition(!name.isEmpty && !name.contains("."), "checkpoint part names cannot contain '.': \(name)")
        }
        self.modules = modules
        self.optimizers = optimizers
    }

    var moduleTensors: [(String, Tensor)] {
        modules.flatMap { part, module in module.stateDict().map { ("\(part).\($0.key)", $0.tensor) } }
    }

    var tensors: [(String, Tensor, Bool)] {
        modules.flatMap { part, module in module.stateDict().map { ("\(part).\($0.key)", $0.tensor, $0.isInteger) } }
            + optimizers.flatMap { part, optimizer in optimizer.stateTensors().map { ("\(part).\($0.0)", $0.1, false) } }
    }

    var optimizerScalars: JSONValue { .object(optimizers.map { ($0.0, $0.1.stateScalars()) }) }

    func restore(from loaded: LoadedCheckpoint) throws {
        var byPart: [String: [String: Tensor]] = [:]
        for (name, tensor) in loaded.tensors {
            let pieces = name.split(separator: ".", maxSplits: 1)
            guard pieces.count == 2 else { continue }
            byPart[String(pieces[0]), default: [:]][String(pieces[1])] = tensor
        }
        for (part, module) in modules {
            guard let tensors = byPart[part] else { throw CheckpointError(loaded.path, "no tensors of '\(part)' in the checkpoint") }
            try module.load(tensors, strict: true, sourceName: "\(loaded.path) (\(part))")
        }
        let scalars = loaded.state["optimizers"]
        for (part, optimizer) in optimizers {
            do {
                try optimizer.loadState(tensors: byPart[part] ?? [:], scalars: scalars?[part] ?? .null)
            } catch {
                throw CheckpointError(loaded.path, "\(part): \(error)")
            }
        }
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
