// `viscoin bench blas`: OpenBLAS sgemm GFLOP/s (2048^3 and the GEMM shapes of ResNet-50
// convolutions) on every rank at the same time, and all-reduce bandwidth across the ranks.
import ArgumentParser
import Common
import Communication
import LinearAlgebra

struct BenchBLASCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blas",
        abstract: "sgemm GFLOP/s per rank and all-reduce GB/s across ranks.")

    @OptionGroup var bench: BenchOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .long, help: "Floats per all-reduce measurement.")
    var allreduceFloats = 10_000_000

    @Flag(name: .long, help: "Measure only the all-reduce (skip sgemm).")
    var allreduceOnly = false

    func validate() throws {
        guard (1...(1 << 28)).contains(allreduceFloats) else { throw ValidationError("--allreduce-floats must be between 1 and 268435456 (got \(allreduceFloats))") }
    }

    func run() throws {
        let repeats = bench.repeats
        let json = bench.json
        let allreduceFloats = allreduceFloats, allreduceOnly = allreduceOnly
        try Runtime.run(runtime) { comm, threads in
            let report = BenchReport(title: "bench blas", communicator: comm, threads: threads)
            // (name, m, n, k): C[m x n] = A[m x k] B[k x n]; ResNet-50 shapes at 224, batch 1 per GEMM.
            let shapes: [(String, Int, Int, Int)] = [
                ("sgemm 2048x2048x2048", 2048, 2048, 2048),
                ("sgemm resnet stem 7x7 (64x12544x147)", 64, 12544, 147),
                ("sgemm resnet layer1 3x3 (64x3136x576)", 64, 3136, 576),
                ("sgemm resnet layer1 1x1 (256x3136x64)", 256, 3136, 64),
                ("sgemm resnet layer3 3x3 (256x196x2304)", 256, 196, 2304),
                ("sgemm resnet layer4 3x3 (512x49x4608)", 512, 49, 4608),
                ("sgemm resnet layer4 3x3 batch8 (512x392x4608)", 512, 392, 4608),
            ]
            for (name, m, n, k) in shapes where !allreduceOnly {
                let a = (0..<(m * k)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
                let b = (0..<(k * n)).map { Float(($0 * 104_729) % 997) / 997 - 0.5 }
                var c = [Float](repeating: 0, count: m * n)
                let flops = 2.0 * Double(m) * Double(n) * Double(k)
                let iterations = max(1, Int(2e9 / flops))
                try comm.barrier()
                let seconds = a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            medianSeconds(repeats: repeats) {
                                for _ in 0..<iterations {
                                    BLAS.sgemm(m: m, n: n, k: k, a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
                                }
                            }
                        }
                    }
                }
                let gflops = flops * Double(iterations) / seconds / 1e9
                let all = try [Float(gflops)].withUnsafeBufferPointer { try comm.allGather($0) }
                let minimum = Double(all.min()!), maximum = Double(all.max()!), mean = Double(all.reduce(0, +)) / Double(all.count)
                report.add(name, mean, "GFLOP/s per rank",
                           [("slowest_rank", .double(minimum)), ("fastest_rank", .double(maximum)), ("per_rank", .array(all.map { .double(Double($0)) }))])
            }

            if comm.size > 1 {
                // Across how many hosts the ranks are (TCP between hosts, shared memory within one).
                let hosts = Set(try comm.allGather(string: comm.hostName)).count
                let across = hosts > 1 ? "across \(hosts) hosts" : "on 1 host"
                for floats in [allreduceFloats, 262_144] {
                    var buffer = [Float](repeating: 1, count: floats)
                    try comm.barrier()
                    let seconds = try buffer.withUnsafeMutableBufferPointer { p in
                        try medianSeconds(repeats: repeats) { try comm.allReduceSum(p) }
                    }
                    let slowest = try comm.allReduceMax(seconds)
                    let bytes = Double(floats * 4)
                    report.add("allreduce \(floats) floats (\(Console.bytes(floats * 4))) \(comm.size) ranks \(across)", bytes / slowest / 1e9, "GB/s",
                               [("ms", .double(slowest * 1000)), ("hosts", JSONValue(hosts)), ("ranks", JSONValue(comm.size))])
                }
            } else {
                report.add("allreduce", 0, "GB/s", [("note", .string("world size 1: no communication"))])
            }
            if comm.isRoot { report.print(json: json) }
        }
    }
}
