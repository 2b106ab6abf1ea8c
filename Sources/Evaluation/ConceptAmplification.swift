// Concept amplification (spec viscoin.md 9): for one image, the explainer's predicted class k,
// each concept's intensity v_j = max(Phi_j) * Theta.weight[k, j] normalised by max |v|, a
// selection (threshold, top-k or explicit indices) and a random baseline of the same size, and
// for each multiplier the image regenerated from the amplified concept maps with the
// explainer's probability of k on it; the "default" image of all-zero concepts. Evaluation
// mode, constant synthesis noise, images in [-1, 1] (f sees them ImageNet-normalised).
import Common
import Models
import TensorCore

public enum ConceptSelection: Equatable, Sendable {
    /// Every concept with v_j > t (ascending index order).
    case threshold(Float)
    /// The k largest v_j (descending value order).
    case topK(Int)
    /// Explicit concept indices.
    case indices([Int])
}

/// One image's concepts as the explainer sees them.
public struct ConceptAnalysis {
    public let phi: Tensor
    public let phiPrime: Tensor
    public let explainerLogits: Tensor
    public let explainerProbabilities: [Float]
    /// f's class probabilities of the same image.
    public let classifierProbabilities: [Float]
    public let predictedClass: Int
    /// a_j: the maximum of each concept map.
    public let pooling: [Float]
    /// v_j = a_j * Theta.weight[k, j] / max |v|.
    public let intensities: [Float]
}

public struct AmplificationResult {
    public let analysis: ConceptAnalysis
    public let multipliers: [Float]
    public let selected: [Int]
    public let random: [Int]
    /// One image [1, 3, R, R] per multiplier.
    public let images: [Tensor]
    public let randomImages: [Tensor]
    /// The explainer's probability of the predicted class on each regenerated image.
    public let probabilities: [Float]
    public let randomProbabilities: [Float]
}

public enum ConceptAmplification {
    public static let defaultMultipliers: [Float] = [0, 1, 2, 4]

    /// Phi, Phi', Theta's logits and the intensities of `image` [1, 3, R, R].
    public static func analyse(_ m: VisCoINModels, image: Tensor) -> ConceptAnalysis {
        m.eval()
        return noGrad {
            let (classifierLogits, hidden) = m.classify(image)
            let (phi, phiPrime) = m.concepts(hidden)
            let logits = m.explainer(phi)
            let probabilities = logits.softmax(dim: 1).toArray()
            let k = argmax(logits.toArray())
            let pooling = phi.adaptiveMaxPool2d(1).flattened(from: 1).toArray()
            let weight = m.explainer.weight.toArray(), concepts = pooling.count
            var v = (0..<concepts).map { pooling[$0] * weight[k * concepts + $0] }
            let scale = v.map(abs).max() ?? 0
            if scale > 0 { v = v.map { $0 / scale } }
            return ConceptAnalysis(phi: phi, phiPrime: phiPrime, explainerLogits: logits, explainerProbabilities: probabilities,
                                   classifierProbabilities: classifierLogits.softmax(dim: 1).toArray(), predictedClass: k,
                                   pooling: pooling, intensities: v)
        }
    }

    /// The first maximal index (torch's argmax).
    public static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }

    public static func select(_ intensities: [Float], _ rule: ConceptSelection) -> [Int] {
        switch rule {
        case .threshold(let t): return intensities.indices.filter { intensities[$0] > t }
        case .topK(let k):
            return Array(intensities.indices.sorted { intensities[$0] > intensities[$1] || (intensities[$0] == intensities[$1] && $0 < $1) }.prefix(k))
        case .indices(let list): return list
        }
    }

    /// Images regenerated with the concept maps `indices` multiplied by each multiplier, and the
    /// explainer's probability of class `k` on each.
    public static func amplify(_ m: VisCoINModels, phi: Tensor, phiPrime: Tensor, indices: [Int], multipliers: [Float], predictedClass k: Int)
        -> (images: [Tensor], probabilities: [Float]) {
        m.eval()
        return noGrad {
            let concepts = phi.shape[1]
            var images: [Tensor] = [], probabilities: [Float] = []
            for multiplier in multipliers {
                var scale = [Float](repeating: 1, count: concepts)
                for j in indices where j >= 0 && j < concepts { scale[j] = multiplier }
                let amplified = phi * Tensor(scale, shape: [1, concepts, 1, 1])
                let image = m.gan(amplified, phiPrime, noise: .const).image
                let (_, hidden) = m.classify(image)
                let probability = m.explainer(m.concepts(hidden).phi).softmax(dim: 1).toArray()[k]
                images.append(image)
                probabilities.append(probability)
            }
            return (images, probabilities)
        }
    }

    /// The whole procedure for one image; the random baseline draws as many concepts from `random`.
    public static func run(_ m: VisCoINModels, image: Tensor, rule: ConceptSelection, multipliers: [Float] = defaultMultipliers,
                           random: RandomGenerator, randomIndices: [Int]? = nil) -> AmplificationResult {
        let analysis = analyse(m, image: image)
        let selected = select(analysis.intensities, rule)
        let baseline = randomIndices ?? Array(random.permutation(analysis.intensities.count).prefix(selected.count))
        let (images, probabilities) = amplify(m, phi: analysis.phi, phiPrime: analysis.phiPrime, indices: selected, multipliers: multipliers,
                                              predictedClass: analysis.predictedClass)
        let (randomImages, randomProbabilities) = amplify(m, phi: analysis.phi, phiPrime: analysis.phiPrime, indices: baseline,
                                                          multipliers: multipliers, predictedClass: analysis.predictedClass)
        return AmplificationResult(analysis: analysis, multipliers: multipliers, selected: selected, random: baseline, images: images,
                                   randomImages: randomImages, probabilities: probabilities, randomProbabilities: randomProbabilities)
    }

    /// The image of all-zero concepts and the explainer's class probabilities on it.
    public static func defaultImage(_ m: VisCoINModels) -> (image: Tensor, probabilities: [Float]) {
        m.eval()
        return noGrad {
            let k = m.concepts
            let image = m.gan(Tensor.zeros([1, k, 3, 3]), Tensor.zeros([1, 9 * k]), noise: .const).image
            let (_, hidden) = m.classify(image)
            return (image, m.explainer(m.concepts(hidden).phi).softmax(dim: 1).toArray())
        }
    }
}
