// Statistics as a collector (stylegan2-ada's training_stats.report / Collector): a job reports
// named scalars whenever it computes them; once per log interval the engine all-reduces every
// name's (count, sum, sum of squares) over the ranks and hands the means to the progress line,
// metrics.jsonl and the report. Names reported on only some ranks still reduce correctly: the
// ranks first agree on the union of names.
import Common
import Communication

/// Mean, standard deviation and count of one statistic over an interval and all ranks.
public struct StatisticSummary: Sendable {
    public var count: Double
    public var mean: Double
    public var std: Double
}

public final class TrainingStatistics {
    private var sums: [String: (count: Double, sum: Double, squares: Double)] = [:]

    public init() {}

    /// One value with a weight (e.g. a batch mean weighted by the batch's images).
    public func report(_ name: String, _ value: Double, weight: Double = 1) {
        var s = sums[name] ?? (0, 0, 0)
        s.count += weight
        s.sum += value * weight
        s.squares += value * value * weight
        sums[name] = s
    }

    /// Per-sample values (e.g. the logits of a batch).
    public func report(_ name: String, values: [Float]) {
        var s = sums[name] ?? (0, 0, 0)
        for v in values {
            let d = Double(v)
            s.count += 1
            s.sum += d
            s.squares += d * d
        }
        sums[name] = s
    }

    /// This rank's values since the last collection, not reduced (tests, single-rank tools).
    public var localNames: [String] { sums.keys.sorted() }

    /// Every statistic of the interval over all ranks (collective), then starts a new interval.
    public func collect(_ communicator: any Communicator) throws -> [String: StatisticSummary] {
        var names = localNames
        if communicator.size > 1 {
            let all = try communicator.allGather(string: names.joined(separator: "\n"))
            names = Set(all.flatMap { $0.split(separator: "\n").map(String.init) }).sorted()
        }
        var flat = [Double](repeating: 0, count: 3 * names.count)
        for (i, name) in names.enumerated() {
            guard let s = sums[name] else { continue }
            (flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]) = s
        }
        if communicator.size > 1 && !flat.isEmpty { try communicator.allReduceSum(&flat) }
        sums = [:]
        var out: [String: StatisticSummary] = [:]
        for (i, name) in names.enumerated() where flat[3 * i] > 0 {
            let count = flat[3 * i], mean = flat[3 * i + 1] / count
            let variance = max(0, flat[3 * i + 2] / count - mean * mean)
            out[name] = StatisticSummary(count: count, mean: mean, std: variance.squareRoot())
        }
        return out
    }
}
