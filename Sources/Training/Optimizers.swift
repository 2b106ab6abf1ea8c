// Optimizers with PyTorch semantics (torch.optim Adam/AdamW/SGD, the same float32 operation
// order as the reference for-each implementation), parameter groups, gradient clipping by the
// global norm, and the check that skips a step whose gradient is not finite.
import Common
import TensorCore

/// Parameters sharing one learning rate and weight decay.
public struct ParameterGroup {
    public var parameters: [(String, Tensor)]
    public var lr: Double
    public var weightDecay: Double
    public init(_ parameters: [(String, Tensor)], lr: Double, weightDecay: Double = 0) {
        self.parameters = parameters
        self.lr = lr
        self.weightDecay = weightDecay
    }
}

public protocol Optimizer: AnyObject {
    var groups: [ParameterGroup] { get set }
    /// Updates every parameter that has a gradient.
    func step()
    /// State tensors under stable names (`<parameter>.exp_avg`, ...), for checkpoints.
    func stateTensors() -> [(String, Tensor)]
    /// Scalar state (step counts).
    func stateScalars() -> JSONValue
    func loadState(tensors: [String: Tensor], scalars: JSONValue) throws
}

extension Optimizer {
    public func zeroGrad() {
        for g in groups { for (_, p) in g.parameters { p.grad = nil } }
    }

    /// Sets every group's learning rate to its base rate times `factor`.
    public func setLearningRates(base: [Double], factor: Double) {
        for i in groups.indices { groups[i].lr = base[i] * factor }
    }

    public var allParameters: [(String, Tensor)] { groups.flatMap(\.parameters) }
}

public struct OptimizerStateError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// torch.optim.Adam / AdamW (amsgrad off, maximize off).
public final class Adam: Optimizer {
    public var groups: [ParameterGroup]
    public let beta1: Double, beta2: Double, eps: Double
    /// AdamW: decoupled weight decay (param *= 1 - lr * wd) instead of adding wd * param to the gradient.
    public let decoupled: Bool
    private var steps: [String: Int] = [:]
    private var expAvg: [String: Tensor] = [:]
    private var expAvgSq: [String: Tensor] = [:]

    public init(_ groups: [ParameterGroup], beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, decoupled: Bool = false) {
        self.groups = groups
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.decoupled = decoupled
    }

    public func step() {
        for group in groups {
            for (name, p) in group.parameters {
                guard let g = p.grad else { continue }
                let count = p.count
                let m = expAvg[name] ?? Tensor.zeros(p.shape), v = expAvgSq[name] ?? Tensor.zeros(p.shape)
                expAvg[name] = m
                expAvgSq[name] = v
                let t = (steps[name] ?? 0) + 1
                steps[name] = t
                let lr = group.lr, wd = group.weightDecay
                let bias1 = 1 - pow(beta1, Double(t)), bias2 = 1 - pow(beta2, Double(t))
                let stepSize = Float(lr / bias1), bias2Sqrt = Float(bias2.squareRoot())
                let w1 = Float(1 - beta1), b2 = Float(beta2), w2 = Float(1 - beta2), epsF = Float(eps)
                let decay = Float(wd), shrink = Float(1 - lr * wd)
                let pp = p.data, gp = g.data, mp = m.data, vp = v.data
                let decoupled = self.decoupled
                Parallel.forRange(count, grain: 1 << 15) { range in
                    for i in range {
                        var grad = gp[i]
                        if wd != 0 {
                            if decoupled { pp[i] *= shrink } else { grad += decay * pp[i] }
                        }
                        mp[i] = mp[i].addingProduct(w1, grad - mp[i])    // exp_avg.lerp_(grad, 1 - beta1) (fused on CPU)
                        vp[i] = vp[i] * b2 + w2 * grad * grad           // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
                        let denom = vp[i].squareRoot() / bias2Sqrt + epsF
                        pp[i] = pp[i] + (-stepSize * mp[i]) / denom     // param.addcdiv_(exp_avg, denom, -step_size)
                    }
                }
            }
        }
    }

    public func stateTensors() -> [(String, Tensor)] {
        allParameters.flatMap { name, _ -> [(String, Tensor)] in
            guard let m = expAvg[name], let v = expAvgSq[name] else { return [] }
            return [("\(name).exp_avg", m), ("\(name).exp_avg_sq", v)]
        }
    }

    public func stateScalars() -> JSONValue {
        .object(allParameters.compactMap { name, _ in steps[name].map { (name, JSONValue($0)) } })
    }

    public func loadState(tensors: [String: Tensor], scalars: JSONValue) throws {
        steps = [:]
        expAvg = [:]
        expAvgSq = [:]
        for (name, p) in allParameters {
            guard let t = scalars[name]?.intValue else { continue }
            guard let m = tensors["\(name).exp_avg"], let v = tensors["\(name).exp_avg_sq"], m.shape == p.shape, v.shape == p.shape else {
                throw OptimizerStateError(message: "optimizer state of \(name) is missing or has the wrong shape")
            }
            steps[name] = Int(t)
            expAvg[name] = m.copy()
            expAvgSq[name] = v.copy()
        }
    }
}

/// torch.optim.SGD (dampening 0).
public final class SGD: Optimizer {
    public var groups: [ParameterGroup]
    public let momentum: Double
    public let nesterov: Bool
    private var buffers: [String: Tensor] = [:]

    public init(_ groups: [ParameterGroup], momentum: Double = 0, nesterov: Bool = false) {
        self.groups = groups
        self.momentum = momentum
        self.nesterov = nesterov
    }

    public func step() {
        for group in groups {
            for (name, p) in group.parameters {
                guard let g = p.grad else { continue }
                let lr = Float(group.lr), decay = Float(group.weightDecay), mu = Float(momentum)
                let pp = p.data, gp = g.data
                let existing = buffers[name]
                let buffer = momentum != 0 ? (existing ?? Tensor.zeros(p.shape)) : nil
                if let buffer { buffers[name] = buffer }
                let bp = buffer?.data, first = existing == nil, nesterov = self.nesterov
                Parallel.forRange(p.count, grain: 1 << 15) { range in
                    for i in range {
                        var d = gp[i]
                        // PyTorch's add(alpha=) is a fused multiply-add on CPU.
                        if decay != 0 { d = d.addingProduct(decay, pp[i]) }
                        if let bp {
                            bp[i] = first ? d : (bp[i] * mu).addingProduct(1, d)
                            d = nesterov ? d.addingProduct(mu, bp[i]) : bp[i]
                        }
                        pp[i] = pp[i].addingProduct(-lr, d)
                    }
                }
            }
        }
    }

    public func stateTensors() -> [(String, Tensor)] {
        allParameters.compactMap { name, _ in buffers[name].map { ("\(name).momentum_buffer", $0) } }
    }

    public func stateScalars() -> JSONValue { .object([]) }

    public func loadState(tensors: [String: Tensor], scalars: JSONValue) throws {
        buffers = [:]
        for (name, p) in allParameters {
            guard let b = tensors["\(name).momentum_buffer"] else { continue }
            guard b.shape == p.shape else { throw OptimizerStateError(message: "momentum buffer of \(name) has the wrong shape") }
            buffers[name] = b.copy()
        }
    }
}

public enum Gradients {
    /// stylegan2-ada's sanitising before each step (training_loop.py, nan_to_num): NaN -> 0,
    /// +inf -> 1e5, -inf -> -1e5. Returns how many entries were replaced.
    @discardableResult
    public static func sanitize(_ parameters: [(String, Tensor)]) -> Int {
        var replaced = 0
        for (_, p) in parameters {
            guard let g = p.grad else { continue }
            let d = g.data
            for i in 0..<g.count where !d[i].isFinite {
                d[i] = d[i].isNaN ? 0 : (d[i] > 0 ? 1e5 : -1e5)
                replaced += 1
            }
        }
        return replaced
    }

    /// True when every gradient is finite.
    public static func allFinite(_ parameters: [(String, Tensor)]) -> Bool {
        for (_, p) in parameters {
            guard let g = p.grad else { continue }
            let d = g.data
            for i in 0..<g.count where !d[i].isFinite { return false }
        }
        return true
    }

    /// torch.nn.utils.clip_grad_norm_: scales the gradients so that their global L2 norm is at
    /// most `maxNorm`; returns the norm before clipping.
    @discardableResult
    public static func clipNorm(_ parameters: [(String, Tensor)], maxNorm: Double) -> Double {
        var total = 0.0
        for (_, p) in parameters {
            guard let g = p.grad else { continue }
            var s = 0.0
            for i in 0..<g.count { s += Double(g.data[i]) * Double(g.data[i]) }
            total += s
        }
        let norm = total.squareRoot()
        let coefficient = maxNorm / (norm + 1e-6)
        if coefficient < 1 {
            let c = Float(coefficient)
            for (_, p) in parameters { if let g = p.grad { for i in 0..<g.count { g.data[i] *= c } } }
        }
        return norm
    }
}

#if canImport(Glibc)
import Glibc
#endif
