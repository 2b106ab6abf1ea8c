// VisCoIN's evaluation on a test split (spec viscoin.md 8 with DECISIONS C21/C22): classifier
// and explainer accuracy and fidelity (argmax f == argmax Theta) as percentages of samples,
// L1, L2 and LPIPS of the reconstructions, FID between the test images and their
// reconstructions (both as [0, 255] pictures), the unweighted loss terms, per-class figures,
// and the reference's own (buggy) aggregates for comparison with published logs. Sharded over
// the ranks and summed, so the result does not depend on their number; the synthesis uses its
// constant noise, so it is reproducible.
import Common
import Communication
import Datasets
import FeatureMetrics
import LinearAlgebra
import Models
import TensorCore

public struct VisCoINEvaluationResult: Codable {
    public struct PerClass: Codable {
        public var name: String
        public var images: Int
        public var classifierAccuracy: Double?
        public var explainerAccuracy: Double?
        public var fidelity: Double?
    }
    /// test_viscoin's aggregates as the original computes them (100 x mean of per-batch counts,
    /// pair counts for the accuracies).
    public struct Reference: Codable {
        public var predsOverlap: Double
        public var correctPreds: Double
        public var correctExplPreds: Double
    }
    public var images = 0
    /// Percentages of samples.
    public var classifierAccuracy = 0.0
    public var explainerAccuracy = 0.0
    public var fidelity = 0.0
    public var l1 = 0.0
    public var l2 = 0.0
    public var lpips: Double? = nil
    public var fid: Double? = nil
    public var detector: String? = nil
    public var accLoss = 0.0
    public var crLoss = 0.0
    public var ofLoss = 0.0
    public var perClass: [PerClass] = []
    public var reference: Reference? = nil
}

/// The metrics of one batch, from the logits and labels.
public struct VisCoINBatchMetrics {
    public let predictions: [Int]
    public let explainerPredictions: [Int]
    /// Intended (C21): fractions of the batch.
    public let fidelity: Double
    public let classifierAccuracy: Double
    public let explainerAccuracy: Double
    /// The reference's per-batch counts: matches of argmax f and argmax Theta, and the pairs
    /// (i, j) with pred_i == label_j (its [B, 1] == [B] broadcast).
    public let referenceOverlap: Int
    public let referenceCorrect: Int
    public let referenceExplainerCorrect: Int

    public init(classifierLogits: Tensor, explainerLogits: Tensor, labels: [Int]) {
        let n = labels.count, c = classifierLogits.shape[1]
        let fl = classifierLogits.toArray(), tl = explainerLogits.toArray()
        func argmax(_ v: [Float], _ row: Int) -> Int {
            var best = 0
            for j in 1..<c where v[row * c + j] > v[row * c + best] { best = j }
            return best
        }
        predictions = (0..<n).map { argmax(fl, $0) }
        explainerPredictions = (0..<n).map { argmax(tl, $0) }
        let agree = zip(predictions, explainerPredictions).filter { $0 == $1 }.count
        let correct = zip(predictions, labels).filter { $0 == $1 }.count
        let explainerCorrect = zip(explainerPredictions, labels).filter { $0 == $1 }.count
        fidelity = Double(agree) / Double(max(n, 1))
        classifierAccuracy = Double(correct) / Double(max(n, 1))
        explainerAccuracy = Double(explainerCorrect) / Double(max(n, 1))
        referenceOverlap = agree
        referenceCorrect = predictions.reduce(0) { total, p in total + labels.filter { $0 == p }.count }
        referenceExplainerCorrect = explainerPredictions.reduce(0) { total, p in total + labels.filter { $0 == p }.count }
    }
}

public enum VisCoINEvaluation {
    /// Evaluates the ensemble on the loader's images (collective). `maxImages` stops early
    /// (periodic tests during training); `lpips` and `detector` are optional.
    public static func evaluate(_ m: VisCoINModels, loader: DataLoader, classNames: [String], lpips: LPIPS?, detector: FeatureDetector?,
                                communicator comm: any Communicator, maxImages: Int? = nil) throws -> VisCoINEvaluationResult {
        let wasTraining = [m.conceptExtractor.isTraining, m.explainer.isTraining, m.gan.isTraining]
        m.eval()
        defer {
            m.conceptExtractor.train(wasTraining[0])
            m.explainer.train(wasTraining[1])
            m.gan.train(wasTraining[2])
        }
        let classes = m.classes
        // Sums: images, classifier correct, explainer correct, agree, l1, l2, lpips, acc, cr, of,
        // reference overlap, reference correct, reference explainer correct, batches; then per
        // class: images, classifier correct, explainer correct, agree.
        let base = 14
        var sums = [Double](repeating: 0, count: base + 4 * classes)
        let realStats = detector.map { FeatureStatistics(dimension: $0.dimension) }
        let fakeStats = detector.map { FeatureStatistics(dimension: $0.dimension) }
        let stream = loader.batches(epoch: 0)
        var seen = 0
        while let batch = try stream.next() {
            if let maxImages, seen >= maxImages { break }
            let keep = (0..<batch.count).filter { !batch.isPadding[$0] }
            seen += batch.count * comm.size
            guard !keep.isEmpty else { continue }
            let x = keep.count == batch.count ? batch.images : batch.images.indexSelect(dim: 0, keep)
            let labels = keep.map { batch.labels[$0] }
            noGrad {
                let f = VisCoINObjective.forward(m, images: x, noise: .const)
                let metrics = VisCoINBatchMetrics(classifierLogits: f.classes, explainerLogits: f.explainerClasses, labels: labels)
                let n = Double(labels.count)
                sums[0] += n
                sums[1] += metrics.classifierAccuracy * n
                sums[2] += metrics.explainerAccuracy * n
                sums[3] += metrics.fidelity * n
                sums[4] += Double(l1Loss(f.rebuilt, x).item()) * n
                sums[5] += Double(mseLoss(f.rebuilt, x).item()) * n
                if let lpips {  // a metric here, so float32 under any --precision (as the FID detector)
                    sums[6] += BLAS.$precisionOverride.withValue(.float32) { Double(lpips.distance(f.rebuilt, x).total.toArray().reduce(0, +)) }
                }
                sums[7] += Double(crossEntropy(f.classes, labels: labels).item()) * n
                sums[8] += Double(VisCoINLoss.conceptRegularization(f.phi).item()) * n
                sums[9] += Double(VisCoINLoss.outputFidelity(original: f.classes, explainer: f.explainerClasses).item()) * n
                sums[10] += Double(metrics.referenceOverlap)
                sums[11] += Double(metrics.referenceCorrect)
                sums[12] += Double(metrics.referenceExplainerCorrect)
                sums[13] += 1
                for (i, label) in labels.enumerated() {
                    let o = base + 4 * label
                    sums[o] += 1
                    if metrics.predictions[i] == label { sums[o + 1] += 1 }
                    if metrics.explainerPredictions[i] == label { sums[o + 2] += 1 }
                    if metrics.predictions[i] == metrics.explainerPredictions[i] { sums[o + 3] += 1 }
                }
                if let detector {
                    // DECISIONS C22: both sides as [0, 255] pictures.
                    realStats!.append(detector.features(ImageTensors.quantized(fromGenerated: x)))
                    fakeStats!.append(detector.features(ImageTensors.quantized(fromGenerated: f.rebuilt)))
                }
            }
        }
        try comm.allReduceSum(&sums)
        var r = VisCoINEvaluationResult()
        let n = max(sums[0], 1)
        r.images = Int(sums[0])
        r.classifierAccuracy = 100 * sums[1] / n
        r.explainerAccuracy = 100 * sums[2] / n
        r.fidelity = 100 * sums[3] / n
        r.l1 = sums[4] / n
        r.l2 = sums[5] / n
        r.lpips = lpips != nil ? sums[6] / n : nil
        (r.accLoss, r.crLoss, r.ofLoss) = (sums[7] / n, sums[8] / n, sums[9] / n)
        let batches = max(sums[13], 1)
        r.reference = .init(predsOverlap: 100 * sums[10] / batches, correctPreds: 100 * sums[11] / batches, correctExplPreds: 100 * sums[12] / batches)
        r.perClass = (0..<classes).map { c in
            let o = base + 4 * c, count = sums[o]
            func share(_ v: Double) -> Double? { count > 0 ? 100 * v / count : nil }
            return .init(name: c < classNames.count ? classNames[c] : "\(c)", images: Int(count), classifierAccuracy: share(sums[o + 1]),
                         explainerAccuracy: share(sums[o + 2]), fidelity: share(sums[o + 3]))
        }
        if let detector, let realStats, let fakeStats {
            try realStats.allReduce(comm)
            try fakeStats.allReduce(comm)
            if realStats.count >= 2 {
                r.fid = try FrechetDistance.compute(generated: fakeStats, real: realStats).fid
                r.detector = detector.label
            }
        }
        return r
    }
}
