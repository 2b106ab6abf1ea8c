// `viscoin bench ...`: release-build benchmarks. Every subcommand prints a readable table and,
// with --json, one JSON object per measurement (name, value, unit and the run's settings) so
// results can be compared across runs and machines.
import ArgumentParser
import Common
import Communication
import LinearAlgebra
import TensorCore

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks (build with -c release).",
        subcommands: [BenchBLASCommand.self, BenchOpsCommand.self, BenchModelsCommand.self, BenchDataCommand.self, BenchTrainCommand.self,
                      BenchGANCommand.self, BenchVisCoINCommand.self])
}

/// Options shared by every benchmark.
struct BenchOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object per measurement instead of a table.")
    var json = false

    @Option(name: .long, help: "Timed repetitions per measurement (the median is reported).")
    var repeats = 5

    func validate() throws {
        guard (1...10_000).contains(repeats) else { throw ValidationError("--repeats must be between 1 and 10000 (got \(repeats))") }
    }
}

/// One benchmark figure.
struct Measurement {
    var name: String
    var value: Double
    var unit: String
    var extra: [(String, JSONValue)] = []
}

/// Collects measurements and prints them on rank 0.
final class BenchReport {
    let title: String
    let settings: [(String, JSONValue)]
    private(set) var measurements: [Measurement] = []

    init(title: String, communicator: any Communicator, threads: Int, batch: Int? = nil, extra: [(String, JSONValue)] = []) {
        self.title = title
        var s: [(String, JSONValue)] = [
            ("ranks", JSONValue(communicator.size)),
            ("threads", JSONValue(threads)),
            ("batch", batch.map { JSONValue($0) } ?? .null),
            ("host", .string(communicator.hostName)),
            ("precision", .string(BLAS.precision.rawValue)),
            ("gemm", .string(BLAS.gemmDescription)),
            ("conv", .string(ConvBackend.setting)),
            ("blas_core", .string(BLAS.coreType)),
            ("blas_kernels", .string(BLASKernels.selection)),
            ("time", .string(Console.timestamp())),
        ]
        s.append(contentsOf: extra)
        settings = s
    }

    func add(_ m: Measurement) { measurements.append(m) }

    func add(_ name: String, _ value: Double, _ unit: String, _ extra: [(String, JSONValue)] = []) {
        measurements.append(Measurement(name: name, value: value, unit: unit, extra: extra))
    }

    func print(json: Bool) {
        if let warning = BLASKernels.warning { Console.error("warning: \(warning)") }
        if json {
            for m in measurements {
                var members: [(String, JSONValue)] = [("bench", .string(title)), ("name", .string(m.name)), ("value", .double(m.value)), ("unit", .string(m.unit))]
                members.append(contentsOf: m.extra)
                members.append(contentsOf: settings)
                Console.print(JSONValue.object(members).serialized())
            }
        } else {
            let settingText = settings.filter { $0.0 != "time" && $0.0 != "blas_kernels" }.map { "\($0.0)=\($0.1.stringValue ?? $0.1.serialized())" }.joined(separator: " ")
            var text = "\(title) (\(settingText))\n"
            // Array-valued extras (e.g. per-rank lists) only go to the JSON output.
            let extraKeys = measurements.flatMap { $0.extra.filter { $0.1.arrayValue == nil }.map(\.0) }
                .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            let rows = measurements.map { m -> [String] in
                var row = [m.name, Console.fixed(m.value, m.value >= 100 ? 1 : 3), m.unit]
                for key in extraKeys {
                    let v = m.extra.first { $0.0 == key }?.1
                    switch v {
                    case .double(let d)?: row.append(Console.fixed(d, 3))
                    case .some(let other): row.append(other.stringValue ?? other.serialized())
                    case nil: row.append("")
                    }
                }
                return row
            }
            text += Console.table(header: ["measurement", "value", "unit"] + extraKeys, rows: rows)
            Console.print(text, terminator: "")
        }
    }
}

/// Median of the timings of `repeats` runs of `body` (after one warm-up run).
func medianSeconds(repeats: Int, warmup: Int = 1, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<warmup { try body() }
    var times: [Double] = []
    for _ in 0..<max(1, repeats) {
        let start = Console.now()
        try body()
        times.append(Console.now() - start)
    }
    times.sort()
    return times[times.count / 2]
}
