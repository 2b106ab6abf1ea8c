// A training phase as data (stylegan2-ada's training_loop.py: name, module, optimizer,
// interval): the engine runs it on steps where `step % interval == 0` and does, in order,
// zero-grad, `rounds` accumulation rounds supplied by the job, the all-reduce of the phase's
// gradients, the non-finite policy, optional clipping, and the optimizer steps. The classifier
// is one phase; the GAN is four (Gmain, Greg, Dmain, Dreg); VisCoIN is one with two optimizers.
import Common
import TensorCore

public final class TrainingPhase {
    /// What to do with a gradient that has NaN or infinite entries.
    public enum NonFinitePolicy: Sendable {
        /// Skip the optimizer step, warn and count it (the classifier, VisCoIN).
        case skipStep
        /// Replace NaN by 0 and +-inf by +-1e5, then step (stylegan2-ada).
        case sanitize
    }

    /// How the gradients are averaged over the ranks.
    public enum Reduction: Sendable {
        /// Bucket by bucket during the backward pass of the last round (first-order phases).
        case duringBackward
        /// One flat all-reduce after the phase (phases that differentiate twice: R1, path length).
        case afterPhase
    }

    public let name: String
    /// The phase runs on steps whose index is a multiple of this.
    public let interval: Int
    /// Accumulation rounds per run of the phase (each round sees its share of the batch).
    public let rounds: Int
    public let optimizers: [Optimizer]
    /// The phase's parameters and their data-parallel reducer.
    public let parallel: DataParallel
    public let reduction: Reduction
    public let nonFinite: NonFinitePolicy
    public let clipGradNorm: Double?
    /// Before the rounds (e.g. enabling gradients of the phase's network only).
    public let prepare: () -> Void
    /// One accumulation round: forward, loss, `round.backward(loss)`.
    public let accumulate: (PhaseRound) throws -> Void

    public init(name: String, interval: Int = 1, rounds: Int = 1, optimizers: [Optimizer], parallel: DataParallel,
                reduction: Reduction = .duringBackward, nonFinite: NonFinitePolicy = .skipStep, clipGradNorm: Double? = nil,
                prepare: @escaping () -> Void = {}, accumulate: @escaping (PhaseRound) throws -> Void) {
        precondition(interval >= 1 && rounds >= 1, "phase \(name): interval and rounds must be positive")
        self.name = name
        self.interval = interval
        self.rounds = rounds
        self.optimizers = optimizers
        self.parallel = parallel
        self.reduction = reduction
        self.nonFinite = nonFinite
        self.clipGradNorm = clipGradNorm
        self.prepare = prepare
        self.accumulate = accumulate
    }

    public func isDue(step: Int) -> Bool { step % interval == 0 }

    func zeroGrad() { for o in optimizers { o.zeroGrad() } }

    /// Runs the phase once. Returns false when the step was skipped (non-finite gradient).
    public func run() throws -> Bool {
        zeroGrad()
        prepare()
        let parameters = parallel.parameters
        // With the flat reduction, each round's gradient is formed on its own and the rounds are
        // then summed in order: a round with several backward passes (Dmain: fake, then real)
        // adds up the same way whether the rounds run on one rank or on several.
        let separateRounds = reduction == .afterPhase && rounds > 1
        var sum: [Tensor?] = []
        for index in 0..<rounds {
            try accumulate(PhaseRound(index: index, count: rounds, phase: self))
            guard separateRounds else { continue }
            if index == 0 {
                sum = parameters.map(\.1.grad)
            } else {
                for (i, (_, p)) in parameters.enumerated() {
                    guard let g = p.grad else { continue }
                    if let s = sum[i] { s.addInPlace(g) } else { sum[i] = g }
                }
            }
            for (_, p) in parameters { p.grad = nil }
        }
        if separateRounds { for (i, (_, p)) in parameters.enumerated() { p.grad = sum[i] } }
        if reduction == .afterPhase { try parallel.allReduceGradients() }
        switch nonFinite {
        case .skipStep:
            guard Gradients.allFinite(parameters) else {
                zeroGrad()
                return false
            }
        case .sanitize:
            Gradients.sanitize(parameters)
        }
        if let clipGradNorm { Gradients.clipNorm(parameters, maxNorm: clipGradNorm) }
        for o in optimizers { o.step() }
        zeroGrad()
        return true
    }
}

/// One accumulation round of a phase.
public struct PhaseRound {
    public let index: Int
    public let count: Int
    public let phase: TrainingPhase
    public var isLast: Bool { index == count - 1 }

    /// Back-propagates this round's loss; during the last round of a first-order phase the
    /// gradients are averaged over the ranks while the backward pass runs.
    public func backward(_ loss: Tensor) throws {
        switch phase.reduction {
        case .duringBackward: try phase.parallel.backward(loss, reduce: isLast)
        case .afterPhase: loss.backward()
        }
    }
}
