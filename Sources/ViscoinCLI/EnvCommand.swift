// `viscoin env`: versions, the MPI world (rank, size, host of every rank), thread settings and
// the CPU/BLAS core type.
import ArgumentParser
import Common
import Communication
import ImageCodecs
import LinearAlgebra
import TensorCore
import Zstd
#if canImport(Glibc)
import Glibc
#endif

struct EnvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "Print versions, the MPI world, thread counts and the CPU/BLAS core type.")

    @OptionGroup var runtime: RuntimeOptions

    @Flag(name: .long, help: "Measure sgemm 1024^3 with the loaded OpenBLAS kernels and with the best family this CPU supports (one process each).")
    var compareKernels = false

    @Flag(name: .long, help: ArgumentHelp(visibility: .private))
    var sgemmProbe = false

    func run() throws {
        if sgemmProbe {  // the child of --compare-kernels: one figure on stdout
            BLAS.threadCount = Runtime.resolveThreads(runtime.threads)
            Console.print(Console.fixed(BLASKernels.sgemmGFLOPs(), 1))
            return
        }
        let compare = compareKernels
        try Runtime.run(runtime) { comm, threads in
            let line = "rank \(comm.rank)/\(comm.size) host \(comm.hostName) pid \(getpid()) threads \(threads) blas-threads \(BLAS.threadCount)"
            let lines = try comm.allGather(string: line)
            if comm.isRoot {
                var out = "viscoin environment\n"
                out += "  communicator: \(comm.implementation), world size \(comm.size)\n"
                out += "  cpu: \(cpuModel()), \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) online cores\n"
                out += "  sgemm: \(BLAS.gemmDescription) (VISCOIN_GEMM=\(environment("VISCOIN_GEMM") ?? "openblas, the default")); convolutions: \(ConvBackend.setting) (VISCOIN_CONV)\n"
                out += "  precision: \(BLAS.precision.rawValue) (--precision, VISCOIN_PRECISION); bf16 products: \(BLAS.bf16Kernel)\n"
                if BLAS.precision == .bf16 {
                    out += "  bf16 self-check against float64: \(BLASKernels.selfCheck(precision: .bf16).map { "FAILED: \($0)" } ?? "passed")\n"
                }
                out += "  openblas: \(BLAS.configuration)\n"
                out += "  openblas core type: \(BLAS.coreType) (OPENBLAS_CORETYPE=\(environment("OPENBLAS_CORETYPE") ?? "unset"))\n"
                out += "  blas kernels: \(BLASKernels.selection); VISCOIN_BLAS_CORE=\(environment("VISCOIN_BLAS_CORE") ?? "auto (default)"); best for this CPU: \(BLASKernels.best() ?? "not ranked")\n"
                if let warning = BLASKernels.warning { out += "  warning: \(warning)\n" }
                if compare { out += try kernelComparison(threads: threads) }
                out += "  zstd: \(Zstd.version)\n"
                out += "  image codecs: \(ImageCodec.libraryVersions)\n"
                out += "  ranks:\n"
                for l in lines { out += "    \(l)\n" }
                Console.print(out, terminator: "")
            }
        }
    }
}

/// The CPU model name from /proc/cpuinfo.
func cpuModel() -> String {
    guard let text = try? Files.readText("/proc/cpuinfo") else { return "unknown" }
    for line in text.split(separator: "\n") where line.hasPrefix("model name") {
        if let colon = line.firstIndex(of: ":") {
            return line[line.index(after: colon)...].trimmingCharacters(in: " \t")
        }
    }
    return "unknown"
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// sgemm 1024^3 GFLOP/s of the loaded kernels and of the CPU's best family, each measured by a
/// child process (OpenBLAS picks its kernels when it loads).
func kernelComparison(threads: Int) throws -> String {
    var families = [BLAS.coreType]
    if let best = BLASKernels.best(), !families.contains(best) { families.append(best) }
    var out = "  sgemm 1024^3, \(threads) threads:\n"
    var figures: [Double] = []
    for family in families {
        let text = try runSelf(["env", "--sgemm-probe", "--threads", "\(threads)"],
                               environment: ["OPENBLAS_CORETYPE": family, "VISCOIN_BLAS_CORE": "inherit", "VISCOIN_NO_REEXEC": "1"])
        guard let gflops = Double(Substring(text).trimmingCharacters(in: " \n")) else { throw BLASKernelsError(message: "the sgemm probe with \(family) printed '\(text)'") }
        figures.append(gflops)
        out += "    \(family): \(Console.fixed(gflops, 1)) GFLOP/s\n"
    }
    if figures.count == 2 { out += "    the loaded kernels reach \(Console.fixed(100 * figures[0] / figures[1], 0))% of \(families[1])'s\n" }
    return out
}

/// Runs this executable with extra environment variables (VISCOIN_BLAS_SELECTION removed) and
/// returns its standard output; throws when it fails.
func runSelf(_ arguments: [String], environment extra: [String: String]) throws -> String {
    var pipe: [Int32] = [0, 0]
    guard Glibc.pipe(&pipe) == 0 else { throw BLASKernelsError(message: "pipe failed") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
    posix_spawn_file_actions_addclose(&actions, pipe[0])
    var env: [String] = []
    var p = environ
    while let entry = p.pointee {
        let text = String(cString: entry)
        let name = String(text.prefix { $0 != "=" })
        if extra[name] == nil, name != "VISCOIN_BLAS_SELECTION" { env.append(text) }
        p += 1
    }
    for (k, v) in extra { env.append("\(k)=\(v)") }
    let argv = (["/proc/self/exe"] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, "/proc/self/exe", &actions, nil, argv, envp)
    close(pipe[1])
    guard rc == 0 else { close(pipe[0]); throw BLASKernelsError(message: "cannot start \(arguments.joined(separator: " ")): \(String(cString: strerror(rc)))") }
    var output = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(pipe[0], &buffer, buffer.count)
        if n <= 0 { break }
        output += buffer[0..<n]
    }
    close(pipe[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    guard status == 0 else { throw BLASKernelsError(message: "\(arguments.joined(separator: " ")) failed (status \(status))") }
    return String(decoding: output, as: UTF8.self)
}
