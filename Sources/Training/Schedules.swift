// Learning-rate schedules: PyTorch StepLR (stepped once per epoch), the VisCoIN decay (x0.8
// every 1000 iterations after the halfway point), cosine annealing (per iteration), constant.
#if canImport(Glibc)
import Glibc
#endif

public enum LearningRateSchedule: Equatable, Sendable, CustomStringConvertible {
    case constant
    /// lr * gamma^(epoch / every).
    case step(every: Int, gamma: Double)
    /// x0.8 at every iteration i > total / 2 with i % 1000 == 0.
    case viscoin(totalIterations: Int)
    /// minimum + (1 - minimum) * (1 + cos(pi * i / total)) / 2, as a factor of the base rate.
    case cosine(totalIterations: Int, minimumFactor: Double)

    /// Factor applied to the base learning rate at (epoch, iteration).
    public func factor(epoch: Int, iteration: Int) -> Double {
        switch self {
        case .constant:
            return 1
        case .step(let every, let gamma):
            return pow(gamma, Double(epoch / max(1, every)))
        case .viscoin(let total):
            let half = total / 2
            guard iteration > half else { return 1 }
            // Multiples of 1000 in (half, iteration].
            let decays = iteration / 1000 - half / 1000
            return pow(0.8, Double(decays))
        case .cosine(let total, let minimum):
            let t = min(1, Double(iteration) / Double(max(1, total)))
            return minimum + (1 - minimum) * (1 + cos(Double.pi * t)) / 2
        }
    }

    public var description: String {
        switch self {
        case .constant: return "constant"
        case .step(let every, let gamma): return "step every \(every) epochs x\(gamma)"
        case .viscoin(let total): return "viscoin (x0.8 every 1000 iterations after \(total / 2))"
        case .cosine(let total, let minimum): return "cosine over \(total) iterations to x\(minimum)"
        }
    }
}
