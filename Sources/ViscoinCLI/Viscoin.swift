// The `viscoin` command-line tool: one subcommand per job, each `run()` only calls the
// libraries. Under mpirun every rank runs the same command.
import ArgumentParser
import LinearAlgebra

@main
enum ViscoinMain {
    static func main() {
        BLAS.reexecWithTunedSettingsIfNeeded()
        Viscoin.main()
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
