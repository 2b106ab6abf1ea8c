// The training engine's parts without a job: gradients only where they exist (a partly trained
// model keeps its untrained parameters bitwise under AdamW), phases skipped by their interval,
// the statistics collector, and typed configurations through JSON.
import Common
import Communication
import NN
import Testing
import TensorCore
import Training

/// Two identical ranks in one process: a sum over ranks doubles, gathers repeat, broadcasts
/// keep the value. Exercises the multi-rank code paths of DataParallel without mpirun.
final class MirroredCommunicator: Communicator {
    var rank: Int { 0 }
    var size: Int { 2 }
    var hostName: String { "mirror" }
    var implementation: String { "mirrored (test)" }
    func barrier() throws {}
    func sleepingBarrier(pollMicroseconds: Int) throws {}
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { for i in buffer.indices { buffer[i] *= 2 } }
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws { for i in buffer.indices { buffer[i] *= 2 } }
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws { for i in buffer.indices { buffer[i] *= 2 } }
    func allReduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {}
    func allGather(_ send: UnsafeRawBufferPointer) throws -> [UInt8] { Array(send) + Array(send) }
    func allGather(_ send: UnsafeBufferPointer<Float>) throws -> [Float] { Array(send) + Array(send) }
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction {
        try allReduceSum(buffer)
        return CompletedReduction()
    }
    func abort(code: Int32) -> Never { fatalError("abort \(code)") }
    func finalize() throws {}
}

final class TwoLayers: Module {
    let first: Linear, second: Linear
    override init() {
        first = Linear(4, 3, generator: RandomGenerator(seed: 1))
        second = Linear(3, 2, generator: RandomGenerator(seed: 2))
        super.init()
        child("first", first)
        child("second", second)
    }
}

@Suite struct EngineTests {
    /// A phase whose loss reaches only `first`: with AdamW's weight decay, a zero gradient
    /// would still move `second`; no gradient must leave it bitwise unchanged.
    @Test(arguments: [TrainingPhase.Reduction.duringBackward, .afterPhase])
    func untrainedParametersStayBitwiseUnchanged(_ reduction: TrainingPhase.Reduction) throws {
        let model = TwoLayers()
        let parameters = model.namedParameters()
        let optimizer = Adam([ParameterGroup(parameters, lr: 0.01, weightDecay: 0.1)], decoupled: true)
        let parallel = DataParallel(parameters: parameters, communicator: MirroredCommunicator())
        let x = RandomGenerator(seed: 3).normal([5, 4])
        let phase = TrainingPhase(name: "first only", optimizers: [optimizer], parallel: parallel, reduction: reduction) { round in
            try round.backward(model.first(x).square().mean())
        }
        let before = model.second.namedParameters().map { $0.1.toArray() }
        let firstBefore = model.first.weight.toArray()
        for _ in 0..<3 { #expect(try phase.run()) }
        #expect(model.second.namedParameters().map { $0.1.toArray() } == before)
        #expect(model.first.weight.toArray() != firstBefore)
        // The optimizer never saw a gradient of `second`: no state, no step count.
        #expect(optimizer.stateTensors().allSatisfy { $0.0.hasPrefix("first.") })
    }

    @Test func averagedGradientsOverMirroredRanksEqualTheLocalOnes() throws {
        let model = TwoLayers()
        let parameters = model.namedParameters()
        let x = RandomGenerator(seed: 4).normal([5, 4])
        (model.second(model.first(x))).sum().backward()
        let local = parameters.map { $0.1.grad!.toArray() }
        for (_, p) in parameters { p.grad = nil }
        try DataParallel(parameters: parameters, communicator: MirroredCommunicator()).backward(model.second(model.first(x)).sum())
        #expect(parameters.map { $0.1.grad!.toArray() } == local)
    }

    @Test func phasesRunOnMultiplesOfTheirIntervalAndNonFiniteStepsAreSkipped() throws {
        let model = TwoLayers()
        let optimizer = Adam([ParameterGroup(model.namedParameters(), lr: 0.01)])
        let parallel = DataParallel(parameters: model.namedParameters(), communicator: SingleProcessCommunicator())
        var rounds = 0
        let phase = TrainingPhase(name: "every 4", interval: 4, rounds: 2, optimizers: [optimizer], parallel: parallel) { round in
            rounds += 1
            try round.backward(model.first(Tensor.ones([1, 4])).sum() * (round.isLast ? Float.nan : 1))
        }
        #expect((0..<10).filter(phase.isDue) == [0, 4, 8])
        let before = model.first.weight.toArray()
        #expect(try phase.run() == false)
        #expect(rounds == 2 && model.first.weight.toArray() == before && model.first.weight.grad == nil)
        // The GAN's policy replaces non-finite entries instead.
        let sanitizing = TrainingPhase(name: "sanitize", optimizers: [optimizer], parallel: parallel, nonFinite: .sanitize) { round in
            try round.backward(model.first(Tensor.ones([1, 4])).sum() * Float.nan)
        }
        #expect(try sanitizing.run())
        #expect(model.first.weight.toArray() == before, "NaN gradients become 0: Adam's first step with g = 0 moves nothing")
    }

    @Test func statisticsCollectWeightedMeansOverRanks() throws {
        let stats = TrainingStatistics()
        stats.report("loss", 2, weight: 3)
        stats.report("loss", 4, weight: 1)
        stats.report("signs", values: [1, -1, 1, 1])
        let summary = try stats.collect(MirroredCommunicator())
        #expect(summary["loss"]!.mean == 2.5 && summary["loss"]!.count == 8)
        #expect(summary["signs"]!.mean == 0.5 && abs(summary["signs"]!.std - 0.75.squareRoot()) < 1e-12)
        #expect(try stats.collect(SingleProcessCommunicator()).isEmpty, "a new interval starts empty")
    }

    @Test func configurationsRoundTripThroughJSONAndNameTheFlag() throws {
        var c = ClassifierTrainingConfig(data: "d", run: "r")
        c.arch = .tiny
        c.clipGradNorm = 1.5
        c.seed = UInt64.max
        let json = c.json
        #expect(json["job"] == "train-classifier" && json["batch_size"] == 32 && json["pretrained"] == .null && json["arch"] == "tiny")
        #expect(try ClassifierTrainingConfig.decode(json, source: "x") == c)
        #expect(try c.overriding([("batch_size", 64)]).batchSize == 64)
        #expect(throws: ConfigurationError.self) { try c.overriding([("no_such_field", 1)]) }
        do {
            _ = try c.overriding([("optimizer", "lamb")])
            Issue.record("an unknown choice must fail")
        } catch let error as ConfigurationError {
            #expect(error.message.contains("--optimizer") && error.message.contains("adam, adamw, sgd"), "\(error.message)")
        }
        do {
            try c.checkResumable(against: c.overriding([("arch", "resnet18")]).json, checkpoint: "ckpt")
            Issue.record("a different architecture must not resume")
        } catch let error as ConfigurationError {
            #expect(error.message == "ckpt was written with --arch resnet18; resume with the same value (got tiny)")
        }
    }
}
