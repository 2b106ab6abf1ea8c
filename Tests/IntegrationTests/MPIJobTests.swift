// Integration tests that start real mpirun jobs of the release binary through launch/run.
// They run one at a time (mpirun jobs compete for the two cores and the launcher).
import Common
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The repository root (two levels above this file's directory).
let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = Files.parentDirectory(of: path) }
    return path
}()

struct ProcessResult {
    var status: Int32
    var output: String
    var seconds: Double
}

/// Runs a shell command with a time limit, capturing stdout and stderr together.
func runShell(_ command: String, timeout: Int = 120) -> ProcessResult {
    let outputPath = "/tmp/viscoin-it-\(UInt64.random(in: 0...UInt64.max)).log"
    let start = Console.now()
    let status = system("cd '\(repositoryRoot)' && timeout \(timeout) bash -c '\(command.replacingOccurrences(of: "'", with: "'\\''"))' > \(outputPath) 2>&1")
    let seconds = Console.now() - start
    let output = (try? Files.readText(outputPath)) ?? ""
    unlink(outputPath)
    let exitCode: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return ProcessResult(status: exitCode, output: output, seconds: seconds)
}

/// A fresh folder under /tmp for one test suite (`/tmp/viscoin-it-NAME-RANDOM`).
func makeTestFolder(_ name: String) -> String {
    let d = "/tmp/viscoin-it-\(name)-\(UInt64.random(in: 0...UInt64.max))"
    try? Files.createDirectory(d)
    return d
}

/// The `xxh64` lines of `viscoin inspect FOLDER --hash`: one hash per checkpoint part of the
/// newest checkpoint in FOLDER, for bitwise comparisons of runs.
func checkpointHashes(_ folder: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    let r = runShell(".build/release/viscoin inspect \(folder) --hash")
    #expect(r.status == 0, "\(r.output)", sourceLocation: sourceLocation)
    return r.output.split(separator: "\n").filter { $0.contains("xxh64") }.joined(separator: "\n")
}

func requireReleaseBinary() throws {
    let binary = "\(repositoryRoot)/.build/release/viscoin"
    try #require(Files.exists(binary), "\(binary) is missing: run `swift build -c release` first (launch/test does)")
}

@Suite(.serialized) struct MPIJobTests {
    @Test func twoRanksAgreeOnEveryCollective() throws {
        try requireReleaseBinary()
        let result = runShell("launch/run -n 2 -- selftest comm")
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("selftest comm: OK (2 ranks"))
    }

    @Test func threeRanksOversubscribed() throws {
        try requireReleaseBinary()
        let result = runShell("launch/run -n 3 -- selftest comm")
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("selftest comm: OK (3 ranks"))
    }

    @Test(arguments: ["exit", "error", "trap"])
    func aFailingRankEndsTheWholeJobWithinSeconds(_ mode: String) throws {
        try requireReleaseBinary()
        let result = runShell("launch/run -n 2 -- selftest fail --rank 1 --mode \(mode) --after 0.2", timeout: 60)
        #expect(result.status != 0, "the job must fail: \(result.output)")
        #expect(result.status != 124, "the job hung until the time limit")
        #expect(result.seconds < 10, "took \(result.seconds) s")
    }

    @Test func envListsEveryRank() throws {
        try requireReleaseBinary()
        let result = runShell("launch/run -n 2 -- env")
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("rank 0/2") && result.output.contains("rank 1/2"))
        #expect(result.output.contains("openblas core type"))
    }

    @Test func demoWritesAndReadsBackItsFile() throws {
        try requireReleaseBinary()
        let dir = "/tmp/viscoin-demo-\(UInt64.random(in: 0...UInt64.max))"
        let result = runShell("launch/run -n 2 -- demo --out \(dir) --images 3 --size 32")
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("read it back: identical"))
        #expect(Files.exists("\(dir)/demo.safetensors.zst"))
        try? Files.remove(dir)
    }

    @Test func badFlagIsAClearErrorWithNonZeroExit() throws {
        try requireReleaseBinary()
        let result = runShell(".build/release/viscoin demo --images 0")
        #expect(result.status != 0)
        #expect(result.output.contains("--images must be in"))
    }
}
