// Concept statistics over a test split (spec viscoin.md 10, `test_concepts`): per image the
// concept activations a = max over the 3x3 map of Phi, their sums (sorted per image, per
// concept, outer products, per class), the balanced class-concept matrix, its softmax over
// classes and the entropy per concept, min-max normalised as the reference returns them; and,
// beyond the reference, the alignment of every learned concept with the dataset's ground-truth
// concepts (Pearson correlations, best match per true concept, one summary score).
import Common
import Communication
import Datasets
import Models
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

public struct ConceptStatistics: Codable {
    public var concepts: Int
    public var classes: Int
    /// [n][K] activations and labels, in test-split order (every rank's images gathered).
    public var activations: [[Float]]
    public var labels: [Int]
    public var items: [Int]
    /// Per-batch accuracies (fractions), as the reference averages them.
    public var batchClassifierAccuracy: [Double]
    public var batchExplainerAccuracy: [Double]

    // Accumulators (Float64).
    public var perImageSorted: [Double] = []
    public var perConcept: [Double] = []
    public var correlations: [Double] = []
    public var classConcept: [Double] = []
    public var classCounts: [Double] = []

    public init(activations: [[Float]], labels: [Int], items: [Int] = [], classes: Int, batchClassifierAccuracy: [Double] = [],
                batchExplainerAccuracy: [Double] = []) {
        self.activations = activations
        self.labels = labels
        self.items = items
        self.classes = classes
        self.batchClassifierAccuracy = batchClassifierAccuracy
        self.batchExplainerAccuracy = batchExplainerAccuracy
        let k = activations.first?.count ?? 0
        concepts = k
        perImageSorted = [Double](repeating: 0, count: k)
        perConcept = [Double](repeating: 0, count: k)
        correlations = [Double](repeating: 0, count: k * k)
        classConcept = [Double](repeating: 0, count: classes * k)
        classCounts = [Double](repeating: 0, count: classes)
        for (a, label) in zip(activations, labels) {
            for (j, v) in a.sorted().enumerated() { perImageSorted[j] += Double(v) }
            for j in 0..<k {
                perConcept[j] += Double(a[j])
                classConcept[label * k + j] += Double(a[j])
                // np.outer of a float32 array: float32 products, summed in Float64.
                for i in 0..<k { correlations[j * k + i] += Double(a[j] * a[i]) }
            }
            classCounts[label] += 1
        }
    }

    /// class_concept / class_counts[:, None] * max(class_counts) [C, K].
    public var balanced: [Double] {
        let maxCount = classCounts.max() ?? 0
        return (0..<(classes * concepts)).map { classConcept[$0] / classCounts[$0 / concepts] * maxCount }
    }

    /// Softmax over classes of the balanced matrix [C, K].
    public var classProbabilityPerConcept: [Double] {
        let b = balanced, k = concepts
        var p = [Double](repeating: 0, count: b.count)
        for j in 0..<k {
            let column = (0..<classes).map { b[$0 * k + j] }
            let top = column.max() ?? 0
            let e = column.map { Glibc.exp($0 - top) }
            let total = e.reduce(0, +)
            for c in 0..<classes { p[c * k + j] = e[c] / total }
        }
        return p
    }

    /// H_j = -sum_c P[c, j] log(P[c, j] + 1e-6).
    public var entropies: [Double] {
        let p = classProbabilityPerConcept, k = concepts
        return (0..<k).map { j in -(0..<classes).reduce(0.0) { $0 + p[$1 * k + j] * Glibc.log(p[$1 * k + j] + 1e-6) } }
    }

    /// (a - min) / (max - min).
    public static func normalized(_ values: [Double]) -> [Double] {
        guard let lo = values.min(), let hi = values.max() else { return values }
        return values.map { ($0 - lo) / (hi - lo) }
    }

    /// Rows (or columns) of a [rows, columns] matrix each normalised to [0, 1].
    public static func normalized(_ m: [Double], rows: Int, columns: Int, alongRows: Bool) -> [Double] {
        var out = m
        if alongRows {
            for r in 0..<rows {
                let row = normalized(Array(m[(r * columns)..<((r + 1) * columns)]))
                for c in 0..<columns { out[r * columns + c] = row[c] }
            }
        } else {
            for c in 0..<columns {
                let column = normalized((0..<rows).map { m[$0 * columns + c] })
                for r in 0..<rows { out[r * columns + c] = column[r] }
            }
        }
        return out
    }

    /// The most activating images of every concept: dataset item indices, best first.
    public func topImages(perConcept count: Int) -> [[Int]] {
        (0..<concepts).map { j in
            Array(activations.indices.sorted { activations[$0][j] > activations[$1][j] }.prefix(count).map { items.isEmpty ? $0 : items[$0] })
        }
    }
}

/// How learned concepts line up with the dataset's true concepts.
public struct ConceptAlignment: Codable {
    public var trueConcepts: [String]
    /// Pearson correlation [K, T] of learned activation j with true concept t over the test images.
    public var correlations: [[Double]]
    /// For each true concept: the learned concept with the largest |correlation| and its value.
    public var bestMatch: [Int]
    public var bestCorrelation: [Double]
    /// Mean over true concepts of the best |correlation|.
    public var score: Double

    public init(activations: [[Float]], truth: [[Float]], names: [String]) {
        trueConcepts = names
        let n = Double(activations.count), k = activations.first?.count ?? 0, t = truth.first?.count ?? 0
        func standardised(_ column: [Double]) -> [Double] {
            let mean = column.reduce(0, +) / max(n, 1)
            let sd = (column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / max(n, 1)).squareRoot()
            return column.map { sd > 1e-12 ? ($0 - mean) / sd : 0 }
        }
        let learned = (0..<k).map { j in standardised(activations.map { Double($0[j]) }) }
        let real = (0..<t).map { c in standardised(truth.map { Double($0[c]) }) }
        let r = learned.map { a in real.map { b in zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / max(n, 1) } }
        let best = (0..<t).map { c in (0..<k).max { abs(r[$0][c]) < abs(r[$1][c]) } ?? 0 }
        let values = (0..<t).map { c in k > 0 ? r[best[c]][c] : 0 }
        correlations = r
        bestMatch = best
        bestCorrelation = values
        score = t > 0 ? values.map(abs).reduce(0, +) / Double(t) : 0
    }
}

public enum ConceptStatisticsCollector {
    /// Activations, labels and per-batch accuracies of the loader's images (collective; every
    /// rank receives all of them, in item order).
    public static func collect(_ m: VisCoINModels, loader: DataLoader, communicator comm: any Communicator) throws -> ConceptStatistics {
        m.eval()
        var local: [Float] = []  // per image: item, label, K activations
        var accuracies: [Double] = []  // per batch: classifier, explainer, weight
        let stream = loader.batches(epoch: 0)
        while let batch = try stream.next() {
            let keep = (0..<batch.count).filter { !batch.isPadding[$0] }
            guard !keep.isEmpty else { continue }
            let x = keep.count == batch.count ? batch.images : batch.images.indexSelect(dim: 0, keep)
            let labels = keep.map { batch.labels[$0] }
            noGrad {
                let (logits, hidden) = m.classify(x)
                let phi = m.concepts(hidden).phi
                let theta = m.explainer(phi)
                let metrics = VisCoINBatchMetrics(classifierLogits: logits, explainerLogits: theta, labels: labels)
                accuracies += [metrics.classifierAccuracy, metrics.explainerAccuracy]
                let a = phi.adaptiveMaxPool2d(1).flattened(from: 1).toArray(), k = phi.shape[1]
                for (r, i) in keep.enumerated() {
                    local += [Float(batch.items[i]), Float(labels[r])]
                    local += a[(r * k)..<((r + 1) * k)]
                }
            }
        }
        let k = m.concepts
        let gathered = try comm.allGather(variable: local.withUnsafeBytes { Array($0) })
        var rows: [(item: Int, label: Int, a: [Float])] = []
        for bytes in gathered {
            let floats = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            for r in 0..<(floats.count / (k + 2)) {
                let o = r * (k + 2)
                rows.append((Int(floats[o]), Int(floats[o + 1]), Array(floats[(o + 2)..<(o + 2 + k)])))
            }
        }
        rows.sort { $0.item < $1.item }
        let allAccuracies = try comm.allGather(variable: accuracies.withUnsafeBytes { Array($0) })
            .flatMap { bytes in bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) } }
        return ConceptStatistics(activations: rows.map(\.a), labels: rows.map(\.label), items: rows.map(\.item), classes: m.classes,
                                 batchClassifierAccuracy: stride(from: 0, to: allAccuracies.count, by: 2).map { allAccuracies[$0] },
                                 batchExplainerAccuracy: stride(from: 1, to: allAccuracies.count, by: 2).map { allAccuracies[$0] })
    }
}
