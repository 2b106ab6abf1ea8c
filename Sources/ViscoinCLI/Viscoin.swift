// The `viscoin` command-line tool: one subcommand per job, each `run()` only calls the
// libraries. Under mpirun every rank runs the same command.
import ArgumentParser
import Common
import LinearAlgebra

@main
enum ViscoinMain {
    static func main() {
        BLAS.reexecWithTunedSettingsIfNeeded()
        let arguments = joiningNegativeValues(Array(CommandLine.arguments.dropFirst()))
        // Flag errors found while parsing print the subcommand's usage; a value refused once the
        // command runs (a file, a range that depends on the data) prints one `error:` line
        // instead of the root command's usage.
        var command: ParsableCommand
        do { command = try Viscoin.parseAsRoot(arguments) } catch {
            // --help and --version end here too; a flag error prints `error: ...` and the
            // subcommand's usage.
            let code = Viscoin.exitCode(for: error)
            guard code != .success else { Viscoin.exit(withError: error) }
            var text = Viscoin.fullMessage(for: error)
            if text.hasPrefix("Error: ") { text = "error: " + text.dropFirst("Error: ".count) }
            Console.error(text)
            Viscoin.exit(withError: code)
        }
        do {
            try EnvironmentSettings.validate()
            try BLASKernels.validateEnvironment()
        } catch {
            Console.error("error: \(error)")
            Viscoin.exit(withError: ExitCode.validationFailure)
        }
        do {
            try command.run()
        } catch let error as ValidationError {
            Console.error("error: \(error.message)")
            Viscoin.exit(withError: ExitCode.validationFailure)
        } catch let exit as ExitCode {
            Viscoin.exit(withError: exit)
        } catch where Viscoin.exitCode(for: error) == .success {
            // `--help`, `help` and `--version` parse into the parser's own help command, whose
            // run() throws the request: the parser prints the text and exits 0.
            Viscoin.exit(withError: error)
        } catch {
            // A failure while the command runs (a file, the data): one `error:` line, exit 1.
            Console.error("error: \(error)")
            Viscoin.exit(withError: ExitCode.failure)
        }
    }

    /// `--lr -1` -> `--lr=-1`: the argument parser reads a word starting with `-` as an option,
    /// which would report a negative number as a missing value. No subcommand takes a negative
    /// number as a positional argument; words after `--` are left alone.
    static func joiningNegativeValues(_ arguments: [String]) -> [String] {
        var out: [String] = [], i = 0
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" { out += arguments[i...]; break }
            if word.hasPrefix("--"), !word.contains("="), i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]) {
                out.append(word + "=" + arguments[i + 1])
                i += 2
                continue
            }
            out.append(word)
            i += 1
        }
        return out
    }

    static func isNegativeNumber(_ word: String) -> Bool {
        guard word.hasPrefix("-"), word.count > 1, let first = word.dropFirst().first, first.isNumber || first == "." else { return false }
        return Double(word) != nil
    }
}

struct Viscoin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "viscoin",
        abstract: "VisCoIN on CPUs: concept-based interpretable classification with a StyleGAN2 generator, trained with MPI.",
        discussion: """
            Run one process directly (world size 1) or several with mpirun / srun, e.g.
              launch/run -n 2 -- prepare demo --out data/demo
              launch/run -n 2 -- train-classifier --data data/demo --run runs/demo --arch tiny
            See README.md for the pipeline, cluster use and file formats.
            """,
        subcommands: [EnvCommand.self, PrepareCommand.self, TrainClassifierCommand.self, TrainGANCommand.self, TrainVisCoINCommand.self,
                      EvaluateCommand.self, AmplifyCommand.self, ConceptsCommand.self, ReportCommand.self, HeatmapsCommand.self, ExploreCommand.self, ConvertCommand.self, InspectCommand.self, GenerateCommand.self, FIDCommand.self,
                      BenchCommand.self, DemoCommand.self, DemoSummaryCommand.self, SelfTestCommand.self]
    )
}
