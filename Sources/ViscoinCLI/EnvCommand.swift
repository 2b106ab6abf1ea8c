// `viscoin env`: versions, the MPI world (rank, size, host of every rank), thread settings and
// the CPU/BLAS core type.
import ArgumentParser
import Common
import Communication
import ImageCodecs
import LinearAlgebra
import Zstd
#if canImport(Glibc)
import Glibc
#endif

struct EnvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "Print versions, the MPI world, thread counts and the CPU/BLAS core type.")

    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try Runtime.run(threads: runtime.threads) { comm, threads in
            let line = "rank \(comm.rank)/\(comm.size) host \(comm.hostName) pid \(getpid()) threads \(threads) blas-threads \(BLAS.threadCount)"
            let lines = try comm.allGather(string: line)
            if comm.isRoot {
                var out = "viscoin environment\n"
                out += "  communicator: \(comm.implementation), world size \(comm.size)\n"
                out += "  cpu: \(cpuModel()), \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) online cores\n"
                out += "  openblas: \(BLAS.configuration)\n"
                out += "  openblas core type: \(BLAS.coreType) (OPENBLAS_CORETYPE=\(environment("OPENBLAS_CORETYPE") ?? "auto"))\n"
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
