// VisCoIN's evaluation metrics (the reference's buggy aggregates and the intended C21 values),
// concept amplification (threshold, top-k and explicit indices with the stored random
// baseline), and the concept statistics of test_concepts, against viscoin_ops goldens; the
// concept alignment score on constructed data.
import Common
import Evaluation
import Models
import NN
import Testing
import TensorCore
import TestSupport

@Suite struct VisCoINToolsTests {
    @Test func metricsIntendedAndReference() throws {
        let golden = try GoldenCase("viscoin_ops/metrics_intended")
        var failures: [String?] = []
        var totals = (n: 0.0, agree: 0.0, correct: 0.0, explainer: 0.0)
        var reference = (overlap: 0.0, correct: 0.0, explainer: 0.0), losses: [String: Double] = [:]
        let batches = golden.config["batches"]!.arrayValue!
        for (j, _) in batches.enumerated() {
            let tag = "@batch\(j)"
            let logits = try golden.tensor("input.classifier_logits" + tag), theta = try golden.tensor("input.explainer_logits" + tag)
            let labels = try golden.ints("input.labels" + tag)
            let m = VisCoINBatchMetrics(classifierLogits: logits, explainerLogits: theta, labels: labels)
            failures.append(golden.check("output.preds" + tag, Tensor(m.predictions.map(Float.init))))
            failures.append(golden.check("output.preds_expl" + tag, Tensor(m.explainerPredictions.map(Float.init))))
            let perBatch: [(String, Float)] = [
                ("reference.preds_overlap", Float(m.referenceOverlap)), ("reference.correct_preds", Float(m.referenceCorrect)),
                ("reference.correct_expl_preds", Float(m.referenceExplainerCorrect)), ("intended.preds_overlap", Float(100 * m.fidelity)),
                ("intended.correct_preds", Float(100 * m.classifierAccuracy)), ("intended.correct_expl_preds", Float(100 * m.explainerAccuracy)),
            ]
            for (key, value) in perBatch { failures.append(golden.check("output.\(key)\(tag)", Tensor(scalar: value))) }
            let images = try golden.tensor("input.images" + tag), rebuilt = try golden.tensor("input.rebuilt_images" + tag)
            let terms: [(String, Tensor)] = [
                ("acc_loss", crossEntropy(logits, labels: labels)), ("cr_loss", VisCoINLoss.conceptRegularization(try golden.tensor("input.concepts" + tag))),
                ("of_loss", VisCoINLoss.outputFidelity(original: logits, explainer: theta)), ("rec_loss_l1", l1Loss(rebuilt, images)),
                ("rec_loss_l2", mseLoss(rebuilt, images)), ("lp_loss", Tensor(scalar: 0)),
            ]
            for (key, value) in terms {
                failures.append(golden.check("output.reference.\(key)\(tag)", value))
                losses[key, default: 0] += Double(value.item()) / Double(batches.count)
            }
            let n = Double(labels.count)
            totals = (totals.n + n, totals.agree + m.fidelity * n, totals.correct + m.classifierAccuracy * n, totals.explainer + m.explainerAccuracy * n)
            reference = (reference.overlap + Double(m.referenceOverlap), reference.correct + Double(m.referenceCorrect),
                         reference.explainer + Double(m.referenceExplainerCorrect))
        }
        let b = Double(batches.count)
        let aggregates: [(String, Double)] = [
            ("reference.preds_overlap", 100 * reference.overlap / b), ("reference.correct_preds", 100 * reference.correct / b),
            ("reference.correct_expl_preds", 100 * reference.explainer / b), ("intended.preds_overlap", 100 * totals.agree / totals.n),
            ("intended.correct_preds", 100 * totals.correct / totals.n), ("intended.correct_expl_preds", 100 * totals.explainer / totals.n),
        ] + losses.map { ("reference.\($0.key)", $0.value) }
        for (key, value) in aggregates { failures.append(golden.check("output.\(key)", Tensor(scalar: Float(value)))) }
        record(failures + golden.uncheckedKeys())
    }

    @Test func amplificationMatchesTheReference() throws {
        let golden = try GoldenCase("viscoin_ops/amplify")
        let e = try GoldenEnsemble(golden)
        let m = e.models
        let images = try golden.tensor("input.images")
        let multipliers = golden.config["multipliers"]!.arrayValue!.map { Float($0.doubleValue!) }
        var failures: [String?] = []
        var analyses: [ConceptAnalysis] = []
        for j in 0..<images.shape[0] { analyses.append(ConceptAmplification.analyse(m, image: images.slice(dim: 0, start: j, end: j + 1))) }
        failures.append(golden.check("output.concept_embeddings", concatenate(analyses.map(\.phi), dim: 0)))
        failures.append(golden.check("output.extra_info", concatenate(analyses.map(\.phiPrime), dim: 0)))
        failures.append(golden.check("output.explainer_logits", concatenate(analyses.map(\.explainerLogits), dim: 0)))
        failures.append(golden.check("output.explainer_probas", Tensor(analyses.flatMap(\.explainerProbabilities), shape: [analyses.count, m.classes])))
        failures.append(golden.check("output.predicted_class", Tensor(analyses.map { Float($0.predictedClass) })))
        failures.append(golden.check("output.concept_pooling", Tensor(analyses.flatMap(\.pooling), shape: [analyses.count, m.concepts])))
        failures.append(golden.check("output.concept_intensities", Tensor(analyses.flatMap(\.intensities), shape: [analyses.count, m.concepts])))
        for (tag, rule) in [("threshold", ConceptSelection.threshold(0.2)), ("top_k", .topK(3))] {
            let randomMask = try golden.tensor("input.random_mask@" + tag).toArray()
            var selected: [Float] = [], best: [Float] = [], rand: [Float] = []
            for j in 0..<images.shape[0] {
                let randomIndices = (0..<m.concepts).filter { randomMask[j * m.concepts + $0] == 1 }
                let r = ConceptAmplification.run(m, image: images.slice(dim: 0, start: j, end: j + 1), rule: rule, multipliers: multipliers,
                                                 random: RandomGenerator(seed: 0), randomIndices: randomIndices)
                let expected = golden.config["selected_indices"]![tag]!.arrayValue![j].arrayValue!.map { Int($0.intValue!) }
                #expect(r.selected == expected, "\(tag) selection of image \(j)")
                selected += (0..<m.concepts).map { r.selected.contains($0) ? 1 : 0 }
                best += r.probabilities
                rand += r.randomProbabilities
                if j == 0 { failures.append(golden.check("output.amplified_images@" + tag, concatenate(r.images, dim: 0))) }
            }
            failures.append(golden.check("output.selected_mask@" + tag, Tensor(selected, shape: [images.shape[0], m.concepts])))
            failures.append(golden.check("output.probas_best@" + tag, Tensor(best, shape: [images.shape[0], multipliers.count])))
            failures.append(golden.check("output.probas_rand@" + tag, Tensor(rand, shape: [images.shape[0], multipliers.count])))
        }
        let indices = golden.config["indices"]!.arrayValue!.map { Int($0.intValue!) }
        let specific = ConceptAmplification.amplify(m, phi: analyses[0].phi, phiPrime: analyses[0].phiPrime, indices: indices,
                                                    multipliers: multipliers, predictedClass: analyses[0].predictedClass)
        failures.append(golden.check("output.amplified_images@indices", concatenate(specific.images, dim: 0)))
        let (defaultImage, defaultProbabilities) = ConceptAmplification.defaultImage(m)
        failures.append(golden.check("output.default_image", defaultImage.squeezed(0)))
        failures.append(golden.check("output.default_probas", Tensor(defaultProbabilities)))
        record(failures + golden.uncheckedKeys())
    }

    @Test func conceptStatisticsMatchTheReference() throws {
        let golden = try GoldenCase("viscoin_ops/concept_stats")
        let m = try GoldenEnsemble(golden).models
        m.eval()
        let images = try golden.tensor("input.images"), labels = try golden.ints("input.labels")
        let batch = Int(golden.config["batch_size"]!.intValue!)
        var activations: [[Float]] = [], logits: [Tensor] = [], thetas: [Tensor] = [], batchF: [Double] = [], batchT: [Double] = []
        for start in stride(from: 0, to: labels.count, by: batch) {
            let end = min(labels.count, start + batch)
            let x = images.slice(dim: 0, start: start, end: end), y = Array(labels[start..<end])
            noGrad {
                let (f, hidden) = m.classify(x)
                let phi = m.concepts(hidden).phi
                let theta = m.explainer(phi)
                let metrics = VisCoINBatchMetrics(classifierLogits: f, explainerLogits: theta, labels: y)
                batchF.append(metrics.classifierAccuracy)
                batchT.append(metrics.explainerAccuracy)
                logits.append(f)
                thetas.append(theta)
                let a = phi.adaptiveMaxPool2d(1).flattened(from: 1).toArray(), k = phi.shape[1]
                for r in 0..<(end - start) { activations.append(Array(a[(r * k)..<((r + 1) * k)])) }
            }
        }
        let s = ConceptStatistics(activations: activations, labels: labels, classes: m.classes, batchClassifierAccuracy: batchF, batchExplainerAccuracy: batchT)
        let (k, c) = (s.concepts, s.classes)
        func t(_ v: [Double], _ shape: [Int]) -> Tensor { Tensor(v.map { Float($0) }, shape: shape) }
        var failures: [String?] = [
            golden.check("output.classifier_logits", concatenate(logits, dim: 0)), golden.check("output.explainer_logits", concatenate(thetas, dim: 0)),
            golden.check("output.activations", Tensor(activations.flatMap { $0 }, shape: [labels.count, k])),
            golden.check("output.batch_classifier_accuracy", t(batchF, [batchF.count])), golden.check("output.batch_explainer_accuracy", t(batchT, [batchT.count])),
            golden.check("output.acc.concept_activation_per_image", t(s.perImageSorted, [k])),
            golden.check("output.acc.concept_activation_per_concept", t(s.perConcept, [k])),
            golden.check("output.acc.concept_correlations", t(s.correlations, [k, k])),
            golden.check("output.acc.class_concept_correlations", t(s.classConcept, [c, k])),
            golden.check("output.acc.class_counts", t(s.classCounts, [c])),
            golden.check("output.balanced_class_concept_correlations", t(s.balanced, [c, k])),
            golden.check("output.class_probability_per_concept", t(s.classProbabilityPerConcept, [c, k])),
            golden.check("output.entropies", t(s.entropies, [k])),
        ]
        let results: [(String, Tensor)] = [
            ("classifier_accuracy", Tensor(scalar: Float(batchF.reduce(0, +) / Double(batchF.count)))),
            ("explainer_accuracy", Tensor(scalar: Float(batchT.reduce(0, +) / Double(batchT.count)))),
            ("concept_activation_per_image", t(ConceptStatistics.normalized(s.perImageSorted), [k])),
            ("concept_activation_per_concept", t(ConceptStatistics.normalized(s.perConcept).sorted(), [k])),
            ("raw_concept_mean_activation", t(ConceptStatistics.normalized(s.perConcept), [k])),
            ("concept_correlations", t(ConceptStatistics.normalized(s.correlations), [k, k])),
            ("class_concept_correlations", t(ConceptStatistics.normalized(s.classConcept, rows: c, columns: k, alongRows: true), [c, k])),
            ("concept_class_correlations", t(ConceptStatistics.normalized(s.balanced, rows: c, columns: k, alongRows: false), [c, k]).transposed(0, 1)),
            ("concept_entropy", t(ConceptStatistics.normalized(s.entropies), [k])),
            ("class_counts", t(s.classCounts, [c])),
        ]
        for (key, value) in results { failures.append(golden.check("output.result.\(key)", value)) }
        record(failures + golden.uncheckedKeys())
    }

    /// A learned concept that tracks a true concept (up to sign and scale) scores |r| = 1; noise
    /// scores near 0.
    @Test func alignmentScoreFindsTheMatchingConcept() {
        let rng = RandomGenerator(seed: 5)
        let truth = (0..<200).map { _ in [Float(rng.nextDouble()), Float(rng.nextDouble())] }
        let learned = truth.map { t in [Float(rng.nextDouble()), -3 * t[1] + 1, 2 * t[0]] }
        let a = ConceptAlignment(activations: learned, truth: truth, names: ["a", "b"])
        #expect(a.bestMatch == [2, 1] && abs(a.score - 1) < 1e-9 && abs(a.bestCorrelation[1] + 1) < 1e-9)
        let noise = ConceptAlignment(activations: truth.map { _ in [Float(rng.nextDouble())] }, truth: truth, names: ["a", "b"])
        #expect(noise.score < 0.25)
    }
}
