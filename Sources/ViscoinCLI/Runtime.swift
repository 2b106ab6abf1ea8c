// Process-level setup shared by the subcommands: the communicator, thread counts, and the
// error policy (a failure on any rank prints a message naming the rank and ends the whole job
// with a non-zero exit, instead of leaving other ranks waiting in a collective).
import ArgumentParser
import Common
import Communication
import LinearAlgebra
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// Options every distributed command accepts.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Compute threads per rank (BLAS and our kernels). Default: VISCOIN_THREADS, else SLURM_CPUS_PER_TASK under srun, else cores / ranks on this host.")
    var threads: Int?

    @Option(name: .long, help: "Arithmetic of convolutions and matrix products: float32 (exact, the default) or bf16 (operands rounded to bfloat16, float32 accumulation, master weights and every other op float32; faster only where the CPU's bf16 units outrun its float32 FMAs: on AVX512-BF16 without AMX they are slower, see the README, Performance). Default: VISCOIN_PRECISION, else float32.")
    var precision: Precision?

    func validate() throws {
        if let threads, threads < 1 || threads > 1024 { throw ValidationError("--threads must be between 1 and 1024 (got \(threads))") }
    }
}

extension Precision: ExpressibleByArgument {}

enum Runtime {
    /// `run(threads:_:)` with the options every distributed command accepts, after setting the
    /// precision they ask for.
    static func run(_ options: RuntimeOptions, _ body: (any Communicator, Int) throws -> Void) throws {
        if let precision = options.precision { BLAS.configuredPrecision = precision }
        try run(threads: options.threads, body)
    }

    /// Threads per rank: explicit value, VISCOIN_THREADS, or what the launcher gives this rank
    /// (SLURM's CPUs per task; else the cores of this host divided by the ranks placed on it).
    static func resolveThreads(_ requested: Int?) -> Int {
        if let requested, requested > 0 { return requested }
        if let text = environment("VISCOIN_THREADS"), let value = Int(text), value > 0 { return value }
        return Launcher.defaultThreads
    }

    /// Runs `body` with a communicator. Errors are printed with the rank and end every rank of
    /// the job with exit code 1; on success the communicator is finalized.
    static func run(threads: Int?, _ body: (any Communicator, Int) throws -> Void) throws {
        let communicator: any Communicator
        do {
            communicator = try makeCommunicator()
        } catch {
            Console.error("error: cannot start MPI: \(error)")
            throw ExitCode(2)
        }
        let threadCount = resolveThreads(threads)
        Parallel.setThreadCount(threadCount)
        do {
            try body(communicator, threadCount)
        } catch let stop as GracefulStop {
            // Every rank stops at the same step: no abort needed.
            if communicator.isRoot { Console.error(stop.message) }
            try? communicator.finalize()
            throw ExitCode(stop.status)
        } catch let exit as ExitCode {
            if communicator.size > 1 && exit != .success { communicator.abort(code: exit.rawValue) }
            throw exit
        } catch let error as ValidationError {
            if communicator.size > 1 {
                Console.error("error (rank \(communicator.rank)): \(error.message)")
                communicator.abort(code: 64)
            }
            throw error
        } catch {
            let prefix = communicator.size > 1 ? "error (rank \(communicator.rank)): " : "error: "
            Console.error(prefix + String(describing: error))
            if communicator.size > 1 { communicator.abort(code: 1) }
            throw ExitCode(1)
        }
        try communicator.finalize()
    }
}

/// Refuses, before any work, an output (named by its flag) that cannot be created or written.
func requireWritable(_ path: String, _ flag: String) throws {
    do { try PathSafety.checkWritable(path, flag: flag) } catch let error as PathSafetyError { throw ValidationError(error.message) }
}
