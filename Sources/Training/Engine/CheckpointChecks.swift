// What resume accepts in a checkpoint's state, checked the same way by resume and by
// `viscoin inspect`: the engine's counters, the job's typed state field by field, and one
// per-rank state per rank. A tampered or damaged manifest is named, field by field, before any
// tensor is restored.
import Common
import LinearAlgebra

/// A job's checkpoint state that can say what is wrong with it.
public protocol CheckedState: Codable {
    /// "field: reason" for every invalid field (empty when the state is valid). `step` is the
    /// checkpoint's optimizer step.
    func problems(step: Int) -> [String]
}

public enum CheckpointChecks {
    /// Throws naming every invalid field of the checkpoint's state.
    public static func validate(_ loaded: LoadedCheckpoint) throws {
        let manifest = Files.join(loaded.path, "manifest.json")
        var problems: [String] = []
        func decoded<T: Decodable>(_ type: T.Type, _ value: JSONValue?, _ what: String) throws -> T {
            do { return try JSONValueDecoder().decode(type, from: value ?? .null) } catch {
                throw CheckpointError(manifest, "\(what): \(error)")
            }
        }
        let engine = try decoded(EngineState.self, loaded.state["engine"], "state.engine")
        if engine.step != loaded.step { problems.append("state.engine.step: \(engine.step), but the checkpoint is of step \(loaded.step)") }
        if engine.skippedSteps < 0 || engine.skippedSteps > max(loaded.step, 0) {
            problems.append("state.engine.skipped_steps: \(engine.skippedSteps) is not within 0...\(loaded.step)")
        }
        if let precision = engine.precision, Precision(rawValue: precision) == nil {
            problems.append("state.engine.precision: '\(precision)' is not float32 or bf16")
        }
        if loaded.rankStates.count != loaded.worldSize {
            problems.append("ranks: \(loaded.rankStates.count) rank states for a world of \(loaded.worldSize)")
        }
        let job = loaded.config["job"]?.stringValue ?? ""
        let state = loaded.state["job"]
        switch job {
        case ClassifierTrainingConfig.jobName: problems += try decoded(ClassifierState.self, state, "state.job").problems(step: loaded.step)
        case GANTrainingConfig.jobName: problems += try decoded(GANState.self, state, "state.job").problems(step: loaded.step)
        case VisCoINTrainingConfig.jobName: problems += try decoded(VisCoINState.self, state, "state.job").problems(step: loaded.step)
        default: problems.append("config.job: '\(job)' is not a training job of this viscoin")
        }
        if !problems.isEmpty { throw CheckpointError(manifest, "invalid state: " + problems.joined(separator: "; ")) }
    }

    /// "name: value is not within range" when `value` is outside `range`.
    static func check<T: Comparable>(_ name: String, _ value: T, _ range: ClosedRange<T>) -> [String] {
        range.contains(value) ? [] : ["\(name): \(value) is not within \(range.lowerBound)...\(range.upperBound)"]
    }

    static func finite(_ name: String, _ value: Double, atLeast lower: Double = 0) -> [String] {
        value.isFinite && value >= lower ? [] : ["\(name): \(value) must be a finite number >= \(lower)"]
    }
}

extension ClassifierState: CheckedState {
    public func problems(step: Int) -> [String] {
        var out = CheckpointChecks.check("state.job.epoch", epoch, 0...1_000_000)
            + CheckpointChecks.check("state.job.loader_batch", loaderBatch, 0...Int(Int32.max))
        if let best {
            out += CheckpointChecks.check("state.job.best.accuracy", best.accuracy, 0...1)
            out += CheckpointChecks.check("state.job.best.epoch", best.epoch, 1...max(1, epoch + 1))
        }
        for record in history { out += CheckpointChecks.check("state.job.history.step", record.step, 0...step) }
        return out
    }
}

extension GANState: CheckedState {
    public func problems(step: Int) -> [String] {
        var out = CheckpointChecks.check("state.job.images_seen", imagesSeen, 0...Int(Int64.max / 2))
            + CheckpointChecks.check("state.job.tick", tick, 0...Int(Int32.max))
            + CheckpointChecks.check("state.job.tick_start_images", tickStartImages, 0...max(0, imagesSeen))
            + CheckpointChecks.finite("state.job.tick_start_time", tickStartTime)
            + CheckpointChecks.finite("state.job.pl_mean", Double(plMean))
        for snapshot in snapshots {
            out += CheckpointChecks.finite("state.job.snapshots.kimg", snapshot.kimg)
            out += CheckpointChecks.check("state.job.snapshots.step", snapshot.step, 0...step)
        }
        return out
    }
}

extension VisCoINState: CheckedState {
    public func problems(step: Int) -> [String] {
        var out = CheckpointChecks.check("state.job.epoch", epoch, 0...1_000_000)
            + CheckpointChecks.check("state.job.loader_batch", loaderBatch, 0...Int(Int32.max))
        for test in tests { out += CheckpointChecks.check("state.job.tests.step", test.step, 0...step) }
        return out
    }
}
