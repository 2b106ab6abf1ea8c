// The VisCoIN ensemble and one training iteration's objective (spec viscoin.md 1, 5-7): the
// frozen classifier f (evaluation mode; every image it sees is in [-1, 1] and ImageNet-normalised
// right before it, DECISIONS B11), the concept extractor Psi, the explainer Theta, the adapted
// generator whose synthesis is shared with the pretrained generator that draws the synthetic
// half of each batch, and LPIPS. `VisCoINObjective` computes every loss term from one batch; the
// trainer, the evaluation and the golden tests call the same code.
import Common
import NN
import TensorCore

/// f, Psi, Theta and the adapted generator: a module whose state dict is `save_viscoin`'s
/// layout (`classifier.*`, `concept_extractor.*`, `explainer.*`, `gan.*`).
public final class VisCoINModels: Module {
    public let classifier: Classifier
    public let conceptExtractor: ConceptExtractor
    public let explainer: Explainer
    public let gan: GeneratorAdapted

    public init(classifier: Classifier, conceptExtractor: ConceptExtractor, explainer: Explainer, gan: GeneratorAdapted) {
        self.classifier = classifier
        self.conceptExtractor = conceptExtractor
        self.explainer = explainer
        self.gan = gan
        super.init()
        child("classifier", classifier)
        child("concept_extractor", conceptExtractor)
        child("explainer", explainer)
        child("gan", gan)
    }

    /// The weight-file specification of this ensemble.
    public var spec: ModelSpec {
        let c = conceptExtractor
        return ModelSpec(kind: .viscoin, config: [
            "classifier": ModelSpec.classifier(classifier.resnet.config, classes: classifier.classes).config,
            "concept_extractor": ["n_concepts": JSONValue(c.nConcepts), "latent_channels": JSONValue(c.conv1.weight.shape[0]),
                                  "input_channels1": JSONValue(c.conv1.weight.shape[1]), "input_channels2": JSONValue(c.conv2.weight.shape[1]),
                                  "input_channels3": JSONValue(c.conv3.weight.shape[1])],
            "explainer": ["n_concepts": JSONValue(c.nConcepts), "n_classes": JSONValue(classifier.classes), "normalized": .bool(explainer.linear.weight == nil)],
            "gan": ["synthesis": ModelSpec.stylegan(.generator, gan.synthesisConfig).config, "z_dim": JSONValue(gan.zDim),
                    "w_dim": JSONValue(gan.mapping.fixedWAvg.count), "num_layers": JSONValue(gan.mapping.styles[0].items.count),
                    "coarse_layer": JSONValue(gan.mapping.coarseLayer), "mid_layer": JSONValue(gan.mapping.midLayer)],
        ])
    }

    public var parts: [(String, Module)] { children }

    public var classes: Int { classifier.classes }
    public var concepts: Int { conceptExtractor.nConcepts }
    public var resolution: Int { gan.synthesis.resolution }

    /// f on images in [-1, 1]: logits [N, C] and the five hidden states.
    public func classify(_ x: Tensor) -> (logits: Tensor, hiddenStates: [Tensor]) { classifier(imagenetNormalized(x)) }

    /// Psi on f's hidden states: Phi [N, K, 3, 3], Phi' [N, 9K].
    public func concepts(_ hidden: [Tensor]) -> (phi: Tensor, phiPrime: Tensor) {
        let n = hidden.count
        return conceptExtractor(hidden[n - 3], hidden[n - 2], hidden[n - 1])
    }
}

/// Loss weights and the iteration that switches on concept regularisation and output fidelity.
public struct VisCoINWeights: Codable, Equatable, Sendable {
    public var alpha: Float = 0.5
    public var beta: Float = 3
    public var gamma: Float = 0.1
    public var delta: Float = 0.2
    /// cr_loss and of_loss are used when iteration > this (strict, as the reference).
    public var cdFidIteration = 100
    public init() {}
}

/// The forward tensors of one batch.
public struct VisCoINForward {
    public let classes: Tensor
    public let phi: Tensor
    public let phiPrime: Tensor
    public let explainerClasses: Tensor
    public let rebuilt: Tensor
    public let ws: Tensor
    public let rebuiltClasses: Tensor
}

/// The loss terms of one batch (weights included, as the reference sums them).
public struct VisCoINLossTerms {
    public let acc, cr, of, ortho, rec, gan, total: Tensor
    public let l1, mse, classCCE: Tensor
    /// nil when LPIPS is off (no weights given).
    public let lpips: Tensor?

    /// (name, value) of every term for logs.
    public var scalars: [(String, Double)] {
        var out: [(String, Double)] = [("acc_loss", acc), ("cr_loss", cr), ("of_loss", of), ("ortho_loss", ortho), ("rec_loss", rec),
                                       ("gan_loss", gan), ("total_loss", total), ("rec_l1", l1), ("rec_mse", mse), ("rec_class_cce", classCCE)]
            .map { ($0.0, Double($0.1.item())) }
        if let lpips { out.append(("rec_lpips", Double(lpips.item()))) }
        return out
    }
}

public enum VisCoINObjective {
    /// Images per recomputed piece of f and LPIPS (`recompute`): the backward pass holds one
    /// piece's activations at a time.
    public static let recomputeChunk = 4

    /// `body` on consecutive chunks of `recomputeChunk` images of `x` (with their range), the
    /// per-image results concatenated again.
    static func recomputedPerChunk(_ x: Tensor, _ body: (Tensor, Range<Int>) -> Tensor) -> Tensor {
        let n = x.shape[0]
        let parts = stride(from: 0, to: n, by: recomputeChunk).map { start in
            let range = start..<Swift.min(n, start + recomputeChunk)
            return body(n <= recomputeChunk ? x : x.slice(dim: 0, start: range.lowerBound, end: range.upperBound), range)
        }
        return parts.count == 1 ? parts[0] : concatenate(parts, dim: 0)
    }

    /// f -> Psi -> Theta -> adapted generator -> f on `images` [N, 3, R, R] in [-1, 1].
    /// The explainer's dropout uses `dropoutMask` (tests) or `dropout` (training); the synthesis
    /// uses `noise`. With `recompute`, f on the reconstruction keeps no activations for the
    /// backward pass, which runs it again, `recomputeChunk` images at a time (one more forward
    /// pass of f).
    public static func forward(_ m: VisCoINModels, images x: Tensor, noise: NoiseMode, dropout: RandomGenerator? = nil,
                               dropoutMask: Tensor? = nil, recompute: Bool = false) -> VisCoINForward {
        let (classes, hidden) = m.classify(x)
        let (phi, phiPrime) = m.concepts(hidden)
        let explainerClasses = m.explainer(phi, generator: dropout, dropoutMask: dropoutMask)
        let (rebuilt, ws) = m.gan(phi, phiPrime, noise: noise)
        let rebuiltClasses: Tensor
        if recompute {
            // f is frozen in evaluation mode (deterministic); trainable weights, if any, go in too.
            let trainable = m.classifier.namedParameters().map(\.1).filter(\.requiresGrad)
            rebuiltClasses = recomputedPerChunk(rebuilt) { chunk, _ in recomputed([chunk] + trainable) { m.classify($0[0]).logits } }
        } else {
            rebuiltClasses = m.classify(rebuilt).logits
        }
        return VisCoINForward(classes: classes, phi: phi, phiPrime: phiPrime, explainerClasses: explainerClasses, rebuilt: rebuilt, ws: ws,
                              rebuiltClasses: rebuiltClasses)
    }

    /// Every term of spec viscoin.md 6 for `images` (the first `labels.count` are real) at
    /// `iteration`: acc_loss (no gradient: f is frozen), cr and of when iteration >
    /// cdFidIteration (otherwise the constant 0), ortho, rec (L1 + MSE + gamma CCE + beta LPIPS)
    /// and gan_loss; L1/MSE/LPIPS compare images in [-1, 1]. With `recompute`, LPIPS-VGG on the
    /// reconstruction keeps no activations for the backward pass, which runs it again,
    /// `recomputeChunk` images at a time (the target images' features are computed once and kept).
    public static func losses(_ m: VisCoINModels, _ f: VisCoINForward, images x: Tensor, labels: [Int], iteration: Int,
                              weights w: VisCoINWeights, lpips: LPIPS?, recompute: Bool = false) -> VisCoINLossTerms {
        let acc = noGrad { crossEntropy(f.classes.slice(dim: 0, start: 0, end: labels.count), labels: labels) }
        let active = iteration > w.cdFidIteration
        let cr = active ? VisCoINLoss.conceptRegularization(f.phi) * w.delta : Tensor(scalar: 0)
        let of = active ? VisCoINLoss.outputFidelity(original: f.classes, explainer: f.explainerClasses) * w.alpha : Tensor(scalar: 0)
        let ortho = VisCoINLoss.conceptOrthogonality(m.conceptExtractor.conv5.weight)
        let l1 = l1Loss(f.rebuilt, x), mse = mseLoss(f.rebuilt, x)
        let classCCE = VisCoINLoss.crossCrossEntropy(f.rebuiltClasses, f.classes.detach())
        var rec = l1 + mse + classCCE * w.gamma
        var perceptual: Tensor? = nil
        if let lpips {
            let d: Tensor
            if recompute {
                d = recomputedPerChunk(f.rebuilt) { chunk, range in
                    let target = noGrad { lpips.normalizedFeatures(x.slice(dim: 0, start: range.lowerBound, end: range.upperBound)) }
                    return recomputed([chunk]) { lpips.distance(lpips.normalizedFeatures($0[0]), target).total }
                }.mean()
            } else {
                d = lpips(f.rebuilt, x).mean()
            }
            perceptual = d
            rec = rec + d * w.beta
        }
        let gan = VisCoINLoss.ganRegularization(ws: f.ws, fixedWAvg: m.gan.mapping.fixedWAvg)
        let total = acc + cr + of + ortho + rec + gan
        return VisCoINLossTerms(acc: acc, cr: cr, of: of, ortho: ortho, rec: rec, gan: gan, total: total, l1: l1, mse: mse,
                                classCCE: classCCE, lpips: perceptual)
    }
}
