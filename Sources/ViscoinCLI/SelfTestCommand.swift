// `viscoin selftest ...` (hidden): checks used by the integration tests that start real
// mpirun jobs: collective results on every rank, and fault propagation (a failing rank must
// end the whole job with a non-zero exit within seconds).
import ArgumentParser
import Common
import Communication
import Models
#if canImport(Glibc)
import Glibc
#endif

struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Internal checks used by the integration tests.",
        shouldDisplay: false,
        subcommands: [SelfTestCommunicationCommand.self, SelfTestFailureCommand.self, SelfTestWriteInceptionCommand.self])
}

struct SelfTestCommunicationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "comm", abstract: "Check every collective across the ranks.")

    func run() throws {
        try Runtime.run(threads: 1) { comm, _ in
            let r = comm.rank, n = comm.size
            var failures: [String] = []
            func expect(_ ok: Bool, _ what: String) { if !ok { failures.append(what) } }

            // Float all-reduce larger than one chunk (exercises chunking).
            let count = 700_001
            var floats = (0..<count).map { Float(r + 1) * Float($0 % 97) }
            try comm.allReduceSum(&floats)
            let triangle = Float(n * (n + 1) / 2)
            expect((0..<count).allSatisfy { floats[$0] == triangle * Float($0 % 97) }, "allReduceSum(Float)")

            var doubles = (0..<1000).map { Double(r) + Double($0) * 1e-3 }
            try comm.allReduceSum(&doubles)
            expect((0..<1000).allSatisfy { abs(doubles[$0] - (Double(n * (n - 1) / 2) + Double(n) * Double($0) * 1e-3)) < 1e-9 }, "allReduceSum(Double)")

            var ints: [Int64] = [Int64(r), 1]
            try comm.allReduceSum(&ints)
            expect(ints == [Int64(n * (n - 1) / 2), Int64(n)], "allReduceSum(Int64)")
            expect(try comm.allReduceMax(Double(r)) == Double(n - 1), "allReduceMax")

            // Broadcast from the first and from the last rank.
            for root in [0, n - 1] {
                var values = r == root ? (0..<1000).map { Float($0) + 0.25 } : [Float](repeating: -1, count: 1000)
                try comm.broadcast(&values, root: root)
                expect(values == (0..<1000).map { Float($0) + 0.25 }, "broadcast(Float, root \(root))")
                let text = try comm.broadcast(string: r == root ? "hello from \(root)" : "", root: root)
                expect(text == "hello from \(root)", "broadcast(bytes, root \(root))")
            }

            let gathered = try [Float(r) * 2, Float(r) * 2 + 1].withUnsafeBufferPointer { try comm.allGather($0) }
            expect(gathered == (0..<(2 * n)).map(Float.init), "allGather(Float)")
            let names = try comm.allGather(string: String(repeating: "x", count: r + 1))
            expect(names == (0..<n).map { String(repeating: "x", count: $0 + 1) }, "allGather(variable bytes)")

            try comm.sleepingBarrier()
            try comm.barrier()
            let all = try comm.allGather(string: failures.isEmpty ? "ok" : failures.joined(separator: ","))
            if comm.isRoot {
                let bad = all.enumerated().filter { $0.element != "ok" }
                if bad.isEmpty {
                    Console.print("selftest comm: OK (\(n) ranks: all-reduce float/double/int64/max, broadcast, all-gather, barriers)")
                } else {
                    for (rank, text) in bad { Console.error("selftest comm: rank \(rank) failed: \(text)") }
                }
                if !bad.isEmpty { throw ExitCode(1) }
            }
        }
    }
}

struct SelfTestFailureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fail", abstract: "One rank fails while the others wait in a collective.")

    @Option(help: "The rank that fails.") var rank = 1
    @Option(help: "How it fails: exit, error, trap.") var mode = "exit"
    @Option(help: "Seconds before failing.") var after = 0.5

    func run() throws {
        let failingRank = rank, mode = mode, after = after
        try Runtime.run(threads: 1) { comm, _ in
            if comm.rank == failingRank {
                usleep(UInt32(after * 1e6))
                switch mode {
                case "trap": fatalError("selftest: deliberate trap on rank \(failingRank)")
                case "error": throw CommunicationError(operation: "selftest", message: "deliberate error on rank \(failingRank)")
                default:
                    Console.error("selftest: rank \(failingRank) exits with code 3")
                    Glibc.exit(3)
                }
            }
            // The other ranks block in a collective that the failing rank never joins.
            var buffer = [Float](repeating: 1, count: 16)
            try comm.allReduceSum(&buffer)
            try comm.barrier()
        }
    }
}

/// Writes a randomly initialised Inception-v3 weight file (no pretrained weights can be
/// downloaded here; the FID tests need a detector file to exercise the command).
struct SelfTestWriteInceptionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "write-inception", abstract: "Write a random Inception-v3 weight file.")
    @Option(help: "Output file.") var output: String
    @Option(help: "Seed.") var seed: UInt64 = 0

    func run() throws {
        let spec = ModelSpec(kind: .inception, config: [:])
        try ModelFile.save(try spec.makeModule(seed: seed), spec: spec, to: output, extraMetadata: [("viscoin.note", "random initialisation (tests only)")])
    }
}
