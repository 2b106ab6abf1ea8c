// train-classifier as users run it, with real mpirun: 2 ranks equal 1 rank with the same
// global batch; N + resume + N equals 2N bitwise; a run continues on fewer ranks; a damaged
// checkpoint is detected and the previous one used; a killed rank leaves a valid checkpoint and
// launch/run --auto-resume finishes the run.
import Common
import SafeTensors
import Testing

@Suite(.serialized) struct TrainingJobTests {
    static let dir: String = {
        let d = "/tmp/viscoin-it-train-\(UInt64.random(in: 0...UInt64.max))"
        try? Files.createDirectory(d)
        return d
    }()
    /// The demo set every test trains on, and the result of preparing it (checked by `train`).
    static let prepared: (path: String, result: ProcessResult) = {
        let path = dir + "/demo"
        return (path, runShell(".build/release/viscoin prepare demo --out \(path) --count 900 --size 32 --seed 1"))
    }()
    static var data: String { prepared.path }

    func train(_ ranks: Int, _ run: String, _ extra: String, autoResume: Int? = nil, env: String = "",
               sourceLocation: SourceLocation = #_sourceLocation) -> ProcessResult {
        #expect(Self.prepared.result.status == 0, "prepare demo failed: \(Self.prepared.result.output)", sourceLocation: sourceLocation)
        let resume = autoResume.map { "--auto-resume \($0) " } ?? ""
        return runShell("\(env) launch/run -n \(ranks) \(resume)-- train-classifier --data \(Self.data) --run \(Self.dir)/\(run) --arch tiny "
                        + "--batch-size 32 --lr 2e-3 --log-every 5 \(extra)", timeout: 300)
    }

    func tensors(_ path: String) throws -> [String: [Float]] {
        let file = try SafeTensorsFile(path: path)
        var out: [String: [Float]] = [:]
        for name in file.names where try file.info(name).dtype == .F32 { out[name] = try file.floats(name) }
        return out
    }

    func hashes(_ run: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        checkpointHashes("\(Self.dir)/\(run)/checkpoints", sourceLocation: sourceLocation)
    }

    @Test func twoRanksEqualOneRankWithTheSameGlobalBatch() throws {
        try requireReleaseBinary()
        // A few SGD steps: training amplifies rounding differences step after step (Adam's first
        // steps especially, g/|g| on near-zero gradients), so equality is checked early.
        let options = "--epochs 2 --max-steps 3 --sync-batch-norm --augment train --optimizer sgd --lr 0.05"
        var r = train(1, "one", options)
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "two", options)
        #expect(r.status == 0, "\(r.output)")
        let a = try tensors("\(Self.dir)/one/classifier.safetensors"), b = try tensors("\(Self.dir)/two/classifier.safetensors")
        #expect(a.keys.sorted() == b.keys.sorted())
        var worst: Float = 0
        for (name, x) in a {
            let y = b[name]!
            let scale = max(x.map(abs).max() ?? 0, 1e-3)
            worst = max(worst, zip(x, y).map { abs($0 - $1) }.max()! / scale)
        }
        #expect(worst < 1e-4, "largest difference relative to the tensor's largest value: \(worst)")
    }

    @Test func resumeIsBitwiseIdentical() throws {
        try requireReleaseBinary()
        let options = "--epochs 3 --augment train"
        var r = train(2, "straight", options + " --max-steps 40")
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "resumed", options + " --max-steps 20")
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "resumed", options + " --max-steps 40 --resume latest")
        #expect(r.status == 0 && r.output.contains("resume: ") && r.output.contains("(step 20,"), "\(r.output)")
        let straight = hashes("straight"), resumed = hashes("resumed")
        #expect(straight.contains("model:") && straight.contains("optimizer:"), "\(straight)")
        #expect(straight == resumed)
        #expect(try Files.read("\(Self.dir)/straight/classifier.safetensors") == Files.read("\(Self.dir)/resumed/classifier.safetensors"))
    }

    @Test func continuesOnFewerRanksAndConverges() throws {
        try requireReleaseBinary()
        var r = train(2, "reshard", "--epochs 5 --augment flip --max-steps 10 --accumulate 2")
        #expect(r.status == 0, "\(r.output)")
        r = train(1, "reshard", "--epochs 5 --augment flip --resume latest --accumulate 1")
        #expect(r.status != 0 && r.output.contains("resume with the same value"), "\(r.output)")
        r = train(1, "reshard", "--epochs 5 --augment flip --resume latest --accumulate 2")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("written by 2 rank(s), continuing on 1"), "\(r.output)")
        let report = try JSONValue.parse(try Files.readText("\(Self.dir)/reshard/report.json"))
        let accuracy = report["test_accuracy"]?.doubleValue ?? 0
        #expect(accuracy > 0.5, "test accuracy \(accuracy) after 5 epochs")
        let losses = MetricsLines.values("\(Self.dir)/reshard/metrics.jsonl", kind: "train", key: "loss")
        #expect(losses.count > 4 && losses.last! < losses.first! * 0.7, "\(losses)")
    }

    @Test func damagedCheckpointFallsBackToThePreviousOne() throws {
        try requireReleaseBinary()
        var r = train(2, "damaged", "--epochs 2 --augment none")
        #expect(r.status == 0, "\(r.output)")
        let checkpoints = try Files.list("\(Self.dir)/damaged/checkpoints").filter { $0.hasPrefix("step-") }
        #expect(checkpoints.count == 2)
        let newest = "\(Self.dir)/damaged/checkpoints/\(checkpoints.last!)"
        let shard = newest + "/shard-00001-of-00002.zst"
        var bytes = try Files.read(shard)
        bytes[bytes.count / 3] ^= 0xFF
        try Files.writeAtomically(shard, bytes: bytes)
        r = runShell(".build/release/viscoin inspect \(newest)")
        #expect(r.status != 0 && r.output.contains("checksum mismatch"), "\(r.output)")
        r = train(2, "damaged", "--epochs 3 --augment none --resume latest")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("\(checkpoints.last!) is damaged") && r.output.contains("trying the previous one"), "\(r.output)")
        #expect(r.output.contains("resume: \(Self.dir)/damaged/checkpoints/\(checkpoints.first!)"), "\(r.output)")
    }

    @Test func killedRankLeavesAValidCheckpointAndAutoResumeFinishes() throws {
        try requireReleaseBinary()
        let once1 = "\(Self.dir)/fault1", once2 = "\(Self.dir)/fault2"
        let options = "--epochs 2 --augment none --checkpoint-every 5"
        var r = train(2, "fault", options, env: "VISCOIN_FAULT_STEP=12 VISCOIN_FAULT_ONCE=\(once1)")
        #expect(r.status != 0, "\(r.output)")
        #expect(r.output.contains("fault injection: killing rank 1 after step 12"), "\(r.output)")
        r = runShell(".build/release/viscoin inspect \(Self.dir)/fault/checkpoints")
        #expect(r.status == 0 && r.output.contains("checkpoint of step 10"), "\(r.output)")
        r = train(2, "fault", options + " --resume latest", autoResume: 2, env: "VISCOIN_FAULT_STEP=27 VISCOIN_FAULT_ONCE=\(once2)")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("auto-resume 1/2") && r.output.contains("(step 25,"), "\(r.output)")
        #expect(Files.exists("\(Self.dir)/fault/report.html"))
    }
}

enum MetricsLines {
    static func values(_ path: String, kind: String, key: String) -> [Double] {
        ((try? Files.readText(path)) ?? "").split(separator: "\n").compactMap { line in
            guard let v = try? JSONValue.parse(String(line)), v["kind"]?.stringValue == kind else { return nil }
            return v[key]?.doubleValue
        }
    }
}
