// The bridge between a training subcommand's options and its job's typed configuration. The
// configuration (Sources/Training) is the one declaration: the options take their defaults
// from it, and their parsed values reach it by name (option `batchSize` sets `batch_size`),
// read from the property wrappers by reflection, so no subcommand copies fields by hand.
// `--dry-run` prints the configuration the run would use.
import ArgumentParser
import Common
import Communication
import LinearAlgebra
import Models
import Training

/// The options every trainer shares; defaults from the job's configuration.
struct RunOptions<Config: TrainingConfiguration>: ParsableArguments {
    @Option(name: .customLong("run"), help: "Run folder (created).") var run: String
    @Option(help: "Continue from a checkpoint: latest, or a checkpoint directory.") var resume: String?
    @Flag(help: "Start over in a run folder that already has checkpoints (removes them).") var force = false
    @Option(help: "Also checkpoint every N steps (0: only where the job does, e.g. at epoch ends).") var checkpointEvery = Config().checkpointEvery
    @Option(help: "Checkpoints kept.") var keep = Config().keep
    @Option(help: "Checkpoint folder (default RUN/checkpoints).") var checkpointDir: String?
    @Flag(help: "The checkpoint folder is on each host's own disk: each host keeps its ranks' shards and a copy of the manifest; resume on the same hosts.")
    var nodeLocalCheckpoints = false
    @Option(help: "Progress line and metrics entry every N steps (0: only where the job logs).") var logEvery = Config().logEvery
    @Option(help: "Stop after N steps in total (the run can be continued with --resume).") var maxSteps: Int?
    @Option(help: "End the run with an error after N steps in a row with a non-finite gradient (each is skipped and logged; 0: never).")
    var maxBadSteps = Config().maxBadSteps
    @Flag(help: "Print the resolved configuration and exit.") var dryRun = false
}

/// Read access to a parsed ArgumentParser property wrapper's value.
protocol ParsedOption { var parsedValue: Any { get } }
extension Option: ParsedOption { var parsedValue: Any { wrappedValue } }
extension Flag: ParsedOption { var parsedValue: Any { wrappedValue } }
protocol ParsedGroup { var group: Any { get } }
extension OptionGroup: ParsedGroup { var group: Any { wrappedValue } }

enum ConfigurationOptions {
    /// Option names that steer the command, not the job.
    static let commandOnly: Set<String> = ["threads", "precision", "dry_run"]

    /// The values of a parsed command's options (and option groups) by configuration key.
    static func fields(of command: Any) throws -> [(String, JSONValue)] {
        var out: [(String, JSONValue)] = []
        for child in Mirror(reflecting: command).children {
            guard let label = child.label else { continue }
            let key = snakeCase(label.hasPrefix("_") ? String(label.dropFirst()) : label)
            if let group = child.value as? ParsedGroup {
                out += try fields(of: group.group)
            } else if let option = child.value as? ParsedOption, !commandOnly.contains(key) {
                guard let value = unwrapped(option.parsedValue) else { continue }  // an optional that was not given
                guard let encodable = value as? any Encodable else { continue }
                out.append((key, try JSONValueEncoder().encode(encodable)))
            }
        }
        return out
    }

    /// The value inside an Optional, or nil for an empty one.
    static func unwrapped(_ value: Any) -> Any? {
        let mirror = Mirror(reflecting: value)
        guard mirror.displayStyle == .optional else { return value }
        return mirror.children.first.map { unwrapped($0.value) } ?? nil
    }

    /// The job's configuration: its defaults with the command's options applied.
    static func configuration<Config: TrainingConfiguration>(_ type: Config.Type, from command: Any) throws -> Config {
        try Config().overriding(try fields(of: command))
    }
}

enum TrainingCommand {
    /// Builds the configuration, then either prints it (`--dry-run`, with `details` of the
    /// resolved run) or calls `train` under the communicator. Configuration errors are usage
    /// errors (exit 64) naming the flag.
    static func run<Config: TrainingConfiguration>(_ command: Any, _ type: Config.Type, runtime: RuntimeOptions, dryRun: Bool,
                                                   details: @escaping (Config, any Communicator) throws -> [String] = { _, _ in [] },
                                                   train: @escaping (Config, any Communicator) throws -> Void) throws {
        let config: Config
        do {
            config = try ConfigurationOptions.configuration(type, from: command)
        } catch let error as ConfigurationError {
            throw ValidationError(error.message)
        }
        try Runtime.run(runtime) { comm, threadCount in
            if dryRun {
                do {
                    try config.validateRunOptions()
                    try config.validate(worldSize: comm.size)
                } catch let error as ConfigurationError {
                    throw ValidationError(error.message)
                }
                let lines = try details(config, comm)
                if comm.isRoot {
                    Console.print(config.json.serialized(pretty: true))
                    Console.print((["ranks: \(comm.size), threads per rank: \(threadCount), precision: \(BLAS.precision.rawValue)"] + lines).joined(separator: "\n"))
                }
                return
            }
            do {
                try train(config, comm)
            } catch let error as ConfigurationError {
                throw ValidationError(error.message)
            }
        }
    }
}

extension ResNetArchitecture: ExpressibleByArgument {}
extension OptimizerChoice: ExpressibleByArgument {}
extension ClassifierSchedule: ExpressibleByArgument {}
extension ClassifierAugmentation: ExpressibleByArgument {}
