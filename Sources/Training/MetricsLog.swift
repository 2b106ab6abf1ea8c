// The JSONL metrics log of a run (rank 0): one JSON object per line, flushed as written. On
// resume the entries after the checkpoint's step are dropped so the log equals the one of an
// uninterrupted run.
import Common
#if canImport(Glibc)
import Glibc
#endif

public final class MetricsLog {
    public let path: String
    private var file: UnsafeMutablePointer<FILE>?

    /// Opens `path` for appending, keeping only the entries with `step <= keepThrough` (none when nil).
    public init(path: String, keepThrough: Int?) throws {
        self.path = path
        if let keepThrough, Files.exists(path) {
            let kept = try Files.readText(path).split(separator: "\n").filter { line in
                guard let value = try? JSONValue.parse(String(line)), let step = value["step"]?.intValue else { return false }
                // End-of-run entries (test results) belong to the run that wrote them.
                return step <= Int64(keepThrough) && value["kind"]?.stringValue != "test"
            }
            try Files.writeAtomically(path, text: kept.map { $0 + "\n" }.joined())
        } else if keepThrough == nil {
            try Files.writeAtomically(path, text: "")
        }
        guard let f = fopen(path, "a") else { throw FileError(path: path, reason: "cannot open for appending") }
        file = f
    }

    deinit { if let file { fclose(file) } }

    public func write(_ entry: [(String, JSONValue)]) {
        guard let file else { return }
        fputs(JSONValue.object(entry).serialized() + "\n", file)
        fflush(file)
    }

    /// (x, y) points of the entries of one kind that have both keys (for report charts).
    public static func series(_ entries: [JSONValue], kind: String, x: String = "step", y: String) -> [(Double, Double)] {
        entries.filter { $0["kind"]?.stringValue == kind }.compactMap { e in
            guard let xv = e[x]?.doubleValue, let yv = e[y]?.doubleValue else { return nil }
            return (xv, yv)
        }
    }

    /// Every entry of a log file.
    public static func read(_ path: String) -> [JSONValue] {
        ((try? Files.readText(path)) ?? "").split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
    }
}
