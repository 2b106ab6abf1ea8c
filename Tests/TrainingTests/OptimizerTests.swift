// Optimizers against torch.optim trajectories (Tests/Fixtures/optim, written by PyTorch with
// make_reference.py), schedules, clipping and the non-finite check.
import Common
import SafeTensors
import TensorCore
import Testing
import Training

let fixtures: String = {
    var path = #filePath
    for _ in 0..<2 { path = Files.parentDirectory(of: path) }
    return path + "/Fixtures"
}()

struct OptimizerTests {
    static let reference = try! SafeTensorsFile(path: fixtures + "/optim/optim_reference.safetensors")

    func tensor(_ name: String) throws -> Tensor {
        let info = try Self.reference.info(name)
        return Tensor(try Self.reference.floats(name), shape: info.shape)
    }

    func make(_ name: String, _ p: [(String, Tensor)]) -> Optimizer {
        switch name {
        case "adam": return Adam([ParameterGroup(p, lr: 1e-3)])
        case "adam_wd": return Adam([ParameterGroup(p, lr: 1e-2, weightDecay: 0.1)], beta1: 0.8, beta2: 0.95, eps: 1e-6)
        case "adamw": return Adam([ParameterGroup(p, lr: 1e-2, weightDecay: 0.05)], decoupled: true)
        case "sgd_momentum": return SGD([ParameterGroup(p, lr: 0.1, weightDecay: 0.01)], momentum: 0.9)
        case "sgd_nesterov": return SGD([ParameterGroup(p, lr: 0.05)], momentum: 0.8, nesterov: true)
        default: return SGD([ParameterGroup(p, lr: 0.3)])
        }
    }

    @Test(arguments: ["adam", "adam_wd", "adamw", "sgd_momentum", "sgd_nesterov", "sgd_plain"])
    func matchesTorchOptim(_ name: String) throws {
        let p = try tensor("p0").requiringGrad()
        let optimizer = make(name, [("w", p)])
        for step in 1...4 {
            p.grad = try tensor("g\(step)")
            optimizer.step()
            let expected = try tensor("\(name).p\(step)").toArray()
            let actual = p.toArray()
            let worst = zip(actual, expected).map { abs($0 - $1) / max(abs($1), 1e-3) }.max()!
            #expect(worst <= 2e-6, "\(name) step \(step): relative error \(worst)")
            if true { #expect(actual == expected, "\(name) step \(step): not bitwise") }
        }
    }

    @Test func stateRoundTripContinuesIdentically() throws {
        let p = try tensor("p0").requiringGrad(), q = try tensor("p0").requiringGrad()
        let a = make("adam_wd", [("w", p)])
        for step in 1...2 { p.grad = try tensor("g\(step)"); a.step() }
        // Copy the state and the parameter into a fresh optimizer.
        q.data.update(from: p.data, count: p.count)
        let b = make("adam_wd", [("w", q)])
        try b.loadState(tensors: Dictionary(uniqueKeysWithValues: a.stateTensors()), scalars: a.stateScalars())
        for step in 3...4 {
            p.grad = try tensor("g\(step)")
            q.grad = try tensor("g\(step)")
            a.step()
            b.step()
        }
        #expect(p.toArray() == q.toArray())
    }

    @Test func schedules() {
        #expect(LearningRateSchedule.step(every: 30, gamma: 0.1).factor(epoch: 29, iteration: 0) == 1)
        #expect(abs(LearningRateSchedule.step(every: 30, gamma: 0.1).factor(epoch: 30, iteration: 0) - 0.1) < 1e-15)
        let viscoin = LearningRateSchedule.viscoin(totalIterations: 100_000)
        #expect(viscoin.factor(epoch: 0, iteration: 50_000) == 1)
        #expect(viscoin.factor(epoch: 0, iteration: 50_999) == 1)
        #expect(abs(viscoin.factor(epoch: 0, iteration: 51_000) - 0.8) < 1e-15)
        #expect(abs(viscoin.factor(epoch: 0, iteration: 99_999) / Double.pow08(49) - 1) < 1e-12)  // spec: 1e-4 * 0.8^49 at the end
        let cosine = LearningRateSchedule.cosine(totalIterations: 100, minimumFactor: 0)
        #expect(cosine.factor(epoch: 0, iteration: 0) == 1 && abs(cosine.factor(epoch: 0, iteration: 50) - 0.5) < 1e-12)
        #expect(abs(cosine.factor(epoch: 0, iteration: 100)) < 1e-12)
    }

    @Test func clippingAndNonFiniteGradients() {
        let a = Tensor([1, 2, 3]).requiringGrad(), b = Tensor([4]).requiringGrad()
        a.grad = Tensor([3, 0, 0])
        b.grad = Tensor([4])
        let norm = Gradients.clipNorm([("a", a), ("b", b)], maxNorm: 1)
        #expect(abs(norm - 5) < 1e-12)
        #expect(abs(a.grad!.toArray()[0] - 0.6) < 1e-6 && abs(b.grad!.toArray()[0] - 0.8) < 1e-6)
        #expect(Gradients.allFinite([("a", a), ("b", b)]))
        b.grad = Tensor([.nan])
        #expect(!Gradients.allFinite([("a", a), ("b", b)]))
    }
}

extension Double {
    static func pow08(_ n: Int) -> Double { (0..<n).reduce(1.0) { r, _ in r * 0.8 } }
}
