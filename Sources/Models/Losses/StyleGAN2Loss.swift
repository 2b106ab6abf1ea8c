// StyleGAN2-ADA's loss (training/loss.py, spec training.md 2): the non-saturating logistic
// loss of G and D, R1 on real images through D and the augmentation (taken with respect to the
// image before augmentation), path-length regularisation with the non-detached running mean,
// style mixing, and the six phases (Gmain, Greg, Gboth, Dmain, Dreg, Dboth) each of which
// back-propagates into the phase's network only. The random draws of a call come from a
// `StyleGAN2Randomness` (our seeded streams in training, replayed draws in the golden tests).
import Common
import NN
import TensorCore

public enum StyleGAN2Phase: String, ConfigurationChoice {
    case Gmain, Greg, Gboth, Dmain, Dreg, Dboth

    public var trainsGenerator: Bool { self == .Gmain || self == .Greg || self == .Gboth }
}

/// The random draws of one accumulation round.
public protocol StyleGAN2Randomness: AnyObject {
    /// The style-mixing decision of one `run_G` (called only when the mixing probability is > 0):
    /// nil when it does not fire, else the cutoff in 1 ..< numWs and the second latents.
    func styleMixing(probability: Float, batch: Int, zDim: Int, numWs: Int) -> (cutoff: Int, z: Tensor)?
    /// The noise of the synthesis layers for one `run_G`.
    func synthesisNoise() -> NoiseMode
    /// N(0, 1) of the generated images' shape for the path-length penalty (divided later).
    func pathLengthNoise(_ shape: [Int]) -> Tensor
    /// The augmentation of one `run_D` (identity without a pipe).
    func augment(_ pipe: AugmentPipe, _ images: Tensor) -> Tensor
}

/// Training draws from seeded counter-based streams (one per purpose).
public final class SeededStyleGAN2Randomness: StyleGAN2Randomness {
    let mixing: RandomGenerator, noise: RandomGenerator, pathLength: RandomGenerator, augmentation: RandomGenerator

    /// Streams derived from (seed, key): the key identifies the step, phase and round, so the
    /// draws of a round do not depend on how rounds are spread over ranks.
    public init(seed: UInt64, key: UInt64) {
        func stream(_ purpose: UInt64) -> RandomGenerator { RandomGenerator(seed: seed, stream: key &* 8 &+ purpose) }
        mixing = stream(1)
        noise = stream(2)
        pathLength = stream(3)
        augmentation = stream(4)
    }

    public func styleMixing(probability: Float, batch: Int, zDim: Int, numWs: Int) -> (cutoff: Int, z: Tensor)? {
        let cutoff = 1 + mixing.nextInt(numWs - 1)
        let fires = Float(mixing.nextDouble()) < probability
        let z = mixing.normal([batch, zDim])
        return fires ? (cutoff, z) : nil
    }
    public func synthesisNoise() -> NoiseMode { .random(noise) }
    public func pathLengthNoise(_ shape: [Int]) -> Tensor { pathLength.normal(shape) }
    public func augment(_ pipe: AugmentPipe, _ images: Tensor) -> Tensor { pipe(images, random: augmentation) }
}

public final class StyleGAN2Loss {
    public let G: Generator
    public let D: Discriminator
    public let augmentPipe: AugmentPipe?
    public var r1Gamma: Float
    public var styleMixingProb: Float
    public var plWeight: Float
    public var plBatchShrink: Int
    public var plDecay: Float
    /// The path-length running mean at the start of the step (not saved by stylegan2-ada; this
    /// project checkpoints it). Every Greg round computes its new mean from this value; the
    /// trainer then sets it to the average of the rounds' new means over all ranks, so a step's
    /// penalties do not depend on how the batch is split (for one round on one rank this is
    /// exactly the reference's update).
    public var plMean: Float = 0
    /// The detached new means of the Greg rounds since the last `takePathLengthMeans`.
    public private(set) var plMeanUpdates: [Float] = []

    /// The rounds' new path-length means, cleared.
    public func takePathLengthMeans() -> [Float] {
        defer { plMeanUpdates = [] }
        return plMeanUpdates
    }

    public init(G: Generator, D: Discriminator, augmentPipe: AugmentPipe?, r1Gamma: Float, styleMixingProb: Float = 0.9,
                plWeight: Float = 2, plBatchShrink: Int = 2, plDecay: Float = 0.01) {
        self.G = G
        self.D = D
        self.augmentPipe = augmentPipe
        self.r1Gamma = r1Gamma
        self.styleMixingProb = styleMixingProb
        self.plWeight = plWeight
        self.plBatchShrink = plBatchShrink
        self.plDecay = plDecay
    }

    /// run_G: mapping (updating w_avg in training mode), style mixing, synthesis. img
    /// [N, C, R, R], ws [N, numWs, wDim] (the mixed ws).
    public func runG(_ z: Tensor, _ random: StyleGAN2Randomness) -> (img: Tensor, ws: Tensor) {
        var ws = G.mapping(z)
        if styleMixingProb > 0, let (cutoff, z2) = random.styleMixing(probability: styleMixingProb, batch: z.shape[0], zDim: z.shape[1], numWs: ws.shape[1]) {
            let mixed = G.mapping(z2, skipWAvgUpdate: true)
            ws = concatenate([ws.slice(dim: 1, start: 0, end: cutoff), mixed.slice(dim: 1, start: cutoff, end: ws.shape[1])], dim: 1)
        }
        return (G.synthesis(ws, noise: random.synthesisNoise()), ws)
    }

    /// run_D: the augmentation, then D. Logits [N, 1].
    public func runD(_ img: Tensor, _ random: StyleGAN2Randomness) -> Tensor {
        D(augmentPipe.map { random.augment($0, img) } ?? img)
    }

    /// R1 (training.md 2.5): logits of D(A(x)), the gradient of their sum with respect to x
    /// (graph kept; no parameter-weight gradients), and the per-sample penalty sum_chw g^2.
    public static func r1(images x: Tensor, logits: (Tensor) -> Tensor) -> (logits: Tensor, grads: Tensor, penalty: Tensor) {
        let realLogits = logits(x)
        let grads = noWeightGradients { Autograd.grad(of: [realLogits.sum()], wrt: [x], createGraph: true)[0]! }
        return (realLogits, grads, grads.square().sum(dims: [1, 2, 3]))
    }

    /// Path lengths (training.md 2.4): g = d sum(img * noise) / d ws (graph kept),
    /// l_i = sqrt(mean_k sum_d g^2). `noise` is already divided by sqrt(H W).
    public static func pathLengths(img: Tensor, ws: Tensor, noise: Tensor) -> (grads: Tensor, lengths: Tensor) {
        let grads = noWeightGradients { Autograd.grad(of: [(img * noise).sum()], wrt: [ws], createGraph: true)[0]! }
        return (grads, grads.square().sum(dims: [2]).mean(dims: [1]).sqrt())
    }

    /// Only the phase's network takes gradients (training_loop.py's requires_grad_).
    public func prepare(_ phase: StyleGAN2Phase) {
        G.freeze(!phase.trainsGenerator)
        D.freeze(phase.trainsGenerator)
    }

    /// accumulate_gradients: forward and backward of one round of `phase` with the loss scaled
    /// by `gain`; gradients add into the `.grad` of the phase's parameters. `report` receives the
    /// per-sample statistics under stylegan2-ada's names; `inspect` the intermediate tensors
    /// ("Gmain.gen_img", "Gpl.pl_grads", "Dr1.r1_grads", ...) for the tests.
    public func accumulateGradients(_ phase: StyleGAN2Phase, realImages: Tensor, genZ: Tensor, gain: Float,
                                    random: StyleGAN2Randomness, report: (String, Tensor) -> Void = { _, _ in },
                                    inspect: (String, Tensor) -> Void = { _, _ in }) {
        prepare(phase)
        let doGmain = phase == .Gmain || phase == .Gboth
        let doDmain = phase == .Dmain || phase == .Dboth
        let doGpl = (phase == .Greg || phase == .Gboth) && plWeight != 0
        let doDr1 = (phase == .Dreg || phase == .Dboth) && r1Gamma != 0

        if doGmain {
            let (img, ws) = runG(genZ, random)
            inspect("Gmain.gen_img", img)
            inspect("Gmain.gen_ws", ws)
            let logits = runD(img, random)
            report("Loss/scores/fake", logits)
            report("Loss/signs/fake", logits.detach().sign())
            let loss = (-logits).softplus()
            report("Loss/G/loss", loss)
            (loss.mean() * gain).backward()
        }
        if doGpl {
            let b = genZ.shape[0] / plBatchShrink
            let (img, ws) = runG(genZ.slice(dim: 0, start: 0, end: b), random)
            let noise = random.pathLengthNoise(img.shape) / Float(Double(img.shape[2] * img.shape[3]).squareRoot())
            let (grads, lengths) = Self.pathLengths(img: img, ws: ws, noise: noise)
            inspect("Gpl.gen_img", img)
            inspect("Gpl.gen_ws", ws)
            inspect("Gpl.pl_grads", grads)
            let mean = lerp(Tensor(scalar: plMean), lengths.mean(), plDecay)
            plMeanUpdates.append(mean.item())
            let penalty = (lengths - mean).square()
            report("Loss/pl_penalty", penalty)
            let reg = penalty * plWeight
            report("Loss/G/reg", reg)
            // img[:, 0, 0, 0] * 0 keeps the first-order graph alive, as the reference.
            ((img.slice(dim: 1, start: 0, end: 1).slice(dim: 2, start: 0, end: 1).slice(dim: 3, start: 0, end: 1).reshaped([b]) * 0 + reg).mean() * gain).backward()
        }
        var lossDgen: Tensor? = nil
        if doDmain {
            let (img, ws) = noGrad { runG(genZ, random) }
            inspect("Dgen.gen_img", img)
            inspect("Dgen.gen_ws", ws)
            let logits = runD(img, random)
            report("Loss/scores/fake", logits)
            report("Loss/signs/fake", logits.detach().sign())
            let loss = logits.softplus()
            lossDgen = loss.detach()
            (loss.mean() * gain).backward()
        }
        if doDmain || doDr1 {
            let x = realImages.detach().requiringGrad(doDr1)
            var logits: Tensor, penaltyLoss: Tensor? = nil
            if doDr1 {
                let (realLogits, grads, penalty) = Self.r1(images: x) { runD($0, random) }
                inspect("Dr1.r1_grads", grads)
                logits = realLogits
                penaltyLoss = penalty * (r1Gamma / 2)
                report("Loss/scores/real", logits)
                report("Loss/signs/real", logits.detach().sign())
                report("Loss/r1_penalty", penalty)
                report("Loss/D/reg", penaltyLoss!)
            } else {
                logits = runD(x, random)
                report("Loss/scores/real", logits)
                report("Loss/signs/real", logits.detach().sign())
            }
            var total = logits * 0
            if doDmain {
                let lossDreal = (-logits).softplus()
                report("Loss/D/loss", lossDgen! + lossDreal.detach())
                total = total + lossDreal
            }
            if let penaltyLoss { total = total + penaltyLoss.reshaped([penaltyLoss.count, 1]) }
            (total.mean() * gain).backward()
        }
    }
}
