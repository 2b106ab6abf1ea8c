// One typed declaration per job configuration. A job's configuration is a Codable struct with
// its defaults (enums for the choices); from it derive the CLI options' defaults, the JSON of
// RUN/config.json and of the checkpoint manifest, the comparison on resume and `--dry-run`.
// The options every trainer shares (run folder, resume, checkpoint cadence, logging, step
// limit) are protocol requirements, so the engine reads them without knowing the job.
import Common

/// A configuration value the user gave is invalid; the message names the flag.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A training run failed for a reason that is not a bad flag (data, files, numerics).
public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public protocol TrainingConfiguration: Codable, Sendable {
    /// The subcommand, written as `job` in config.json ("train-classifier").
    static var jobName: String { get }
    /// Keys (as in config.json) a resumed run must share with its checkpoint, because the saved
    /// state would mean something else otherwise (model architecture, batch composition).
    static var resumeInvariants: [String] { get }

    /// The defaults (every field at its default; `data`/`run` empty).
    init()

    /// Run folder (created).
    var run: String { get }
    /// `latest` or a checkpoint directory.
    var resume: String? { get }
    /// Start over in a run folder that already has checkpoints (they are removed).
    var force: Bool { get }
    /// Checkpoint every N optimizer steps (0: only where the job asks, e.g. at epoch ends).
    var checkpointEvery: Int { get }
    /// Checkpoints kept.
    var keep: Int { get }
    /// Checkpoint folder (default RUN/checkpoints).
    var checkpointDir: String? { get }
    /// The checkpoint folder is on each host's own disk (see CheckpointStore).
    var nodeLocalCheckpoints: Bool { get }
    /// Progress line and metrics entry every N steps (0: only where the job asks).
    var logEvery: Int { get }
    /// Stop after this many optimizer steps in total.
    var maxSteps: Int? { get }
    /// End the run with an error after this many steps in a row with a non-finite gradient
    /// (each is skipped and logged; 0: never).
    var maxBadSteps: Int { get }

    /// Checks what can be checked before any data is read; messages name the flag.
    func validate(worldSize: Int) throws
}

extension TrainingConfiguration {
    /// The configuration as written to config.json: `job` first, then every field.
    public var json: JSONValue {
        let members = (try? JSONValueEncoder().encode(self))?.objectValue ?? []
        return .object([("job", .string(Self.jobName))] + members)
    }

    /// Reads a configuration from JSON (config.json, a manifest, or defaults merged with
    /// command-line values); errors name the field as its flag.
    public static func decode(_ json: JSONValue, source: String) throws -> Self {
        do {
            return try JSONValueDecoder().decode(Self.self, from: json)
        } catch let error as JSONCodingError {
            let flag = "--" + error.path.replacing("_", with: "-")
            throw ConfigurationError("\(source): \(flag): \(error.reason)")
        }
    }

    /// `self` with the given fields replaced (keys as in config.json). Unknown keys are a
    /// programming error of the caller and are reported as such.
    public func overriding(_ fields: [(String, JSONValue)], source: String = "command line") throws -> Self {
        guard var members = json.objectValue else { return self }
        for (key, value) in fields {
            guard let index = members.firstIndex(where: { $0.0 == key }) else {
                throw ConfigurationError("\(source): \(key) is not a setting of \(Self.jobName)")
            }
            members[index].1 = value
        }
        return try Self.decode(.object(members), source: source)
    }

    /// The checks of the options the engine owns.
    public func validateRunOptions() throws {
        guard !run.isEmpty else { throw ConfigurationError("--run: a run folder is required") }
        guard checkpointEvery >= 0 else { throw ConfigurationError("--checkpoint-every must be 0 (epoch ends only) or positive, got \(checkpointEvery)") }
        if let checkpointDir, checkpointDir.isEmpty { throw ConfigurationError("--checkpoint-dir must not be empty") }
        guard keep >= 1 else { throw ConfigurationError("--keep must be at least 1, got \(keep)") }
        guard maxBadSteps >= 0 else { throw ConfigurationError("--max-bad-steps must be 0 (never stop) or positive, got \(maxBadSteps)") }
        guard logEvery >= 0 else { throw ConfigurationError("--log-every must be 0 or positive, got \(logEvery)") }
        if let maxSteps, maxSteps < 1 { throw ConfigurationError("--max-steps must be at least 1, got \(maxSteps)") }
    }

    /// Compares the invariant fields with a checkpoint's configuration.
    public func checkResumable(against saved: JSONValue, checkpoint: String) throws {
        let now = json
        for key in Self.resumeInvariants {
            guard let old = saved[key], let new = now[key], old != new else { continue }
            let flag = "--" + key.replacing("_", with: "-")
            throw ConfigurationError("\(checkpoint) was written with \(flag) \(Self.shown(old)); resume with the same value (got \(Self.shown(new)))")
        }
    }

    static func shown(_ value: JSONValue) -> String {
        value.stringValue ?? value.serialized()
    }
}
