// train-gan as users run it, with real mpirun, on the demo set with the tiny networks: 2 ranks
// equal 1 rank with the same global batch and minibatches; N + resume + N equals 2N bitwise; a
// killed rank leaves a valid checkpoint and launch/run --auto-resume finishes; a short run's
// domain FID (a classifier's feature space) falls well below the untrained generator's.
import Common
import SafeTensors
import Testing

@Suite(.serialized) struct GANJobTests {
    static let dir: String = {
        let d = "/tmp/viscoin-it-gan-\(UInt64.random(in: 0...UInt64.max))"
        try? Files.createDirectory(d)
        return d
    }()
    static let prepared: (path: String, result: ProcessResult) = {
        let path = dir + "/demo"
        return (path, runShell(".build/release/viscoin prepare demo --out \(path) --count 450 --size 32 --seed 2"))
    }()

    func train(_ ranks: Int, _ run: String, _ extra: String, autoResume: Int? = nil, env: String = "",
               sourceLocation: SourceLocation = #_sourceLocation) -> ProcessResult {
        #expect(Self.prepared.result.status == 0, "prepare demo failed: \(Self.prepared.result.output)", sourceLocation: sourceLocation)
        let resume = autoResume.map { "--auto-resume \($0) " } ?? ""
        return runShell("\(env) launch/run -n \(ranks) \(resume)-- train-gan --data \(Self.prepared.path) --run \(Self.dir)/\(run) --cfg tiny "
                        + "--batch 8 --batch-gpu 4 --kimg-per-tick 0.04 --snap 2 --grid-size 4 \(extra)", timeout: 600)
    }

    func floats(_ path: String) throws -> [String: [Float]] {
        let file = try SafeTensorsFile(path: path)
        var out: [String: [Float]] = [:]
        for name in file.names where try file.info(name).dtype == .F32 { out[name] = try file.floats(name) }
        return out
    }

    func hashes(_ run: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        checkpointHashes("\(Self.dir)/\(run)/checkpoints", sourceLocation: sourceLocation)
    }

    @Test func twoRanksEqualOneRankWithTheSameMinibatches() throws {
        try requireReleaseBinary()
        // 1 rank: two rounds of 4 images; 2 ranks: one round of 4 each, the same global minibatches.
        // auto's gamma and EMA follow the number of ranks (as train.py), so they are given; the
        // single rank runs one thread like each of the two (OpenBLAS' threaded GEMMs round
        // differently from its single-threaded ones).
        let options = "--max-steps 6 --metrics none --augpipe bgc --p 0.5 --aug fixed --gamma 0.01 --ema-kimg 1"
        var r = train(1, "one", options + " --threads 1")
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "two", options)
        #expect(r.status == 0, "\(r.output)")
        // Every tensor of G, D, G_ema and both optimizers is bitwise equal, except w_avg, which
        // each rank tracks from its own samples (the ranks then average it).
        let one = hashes("one").split(separator: "\n"), two = hashes("two").split(separator: "\n")
        for (a, b) in zip(one, two) where !a.hasPrefix("G:") && !a.hasPrefix("G_ema:") { #expect(a == b) }
        let a = try floats("\(Self.dir)/one/G_ema.safetensors"), b = try floats("\(Self.dir)/two/G_ema.safetensors")
        #expect(a.keys.sorted() == b.keys.sorted())
        for (name, x) in a where name != "mapping.w_avg" { #expect(x == b[name]!, "\(name) differs") }
    }

    @Test func resumeIsBitwiseIdentical() throws {
        try requireReleaseBinary()
        let options = "--metrics none --kimg 0.096"
        var r = train(2, "straight", options)
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "resumed", options + " --max-steps 5")
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "resumed", options + " --resume latest")
        #expect(r.status == 0 && r.output.contains("resume: ") && r.output.contains("(step 5,"), "\(r.output)")
        let straight = hashes("straight"), resumed = hashes("resumed")
        #expect(straight.contains("G:") && straight.contains("G_ema:") && straight.contains("D_opt:") && straight.contains("augment_pipe:"), "\(straight)")
        #expect(straight == resumed)
        #expect(try Files.read("\(Self.dir)/straight/G_ema.safetensors") == Files.read("\(Self.dir)/resumed/G_ema.safetensors"))
    }

    @Test func killedRankLeavesAValidCheckpointAndAutoResumeFinishes() throws {
        try requireReleaseBinary()
        let once = "\(Self.dir)/fault-once"
        let options = "--metrics none --kimg 0.08 --checkpoint-every 4"
        let r = train(2, "fault", options + " --resume latest", autoResume: 2, env: "VISCOIN_FAULT_STEP=6 VISCOIN_FAULT_ONCE=\(once)")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("fault injection: killing rank 1 after step 6") && r.output.contains("auto-resume 1/2") && r.output.contains("(step 4,"), "\(r.output)")
        #expect(Files.exists("\(Self.dir)/fault/report.html") && Files.exists("\(Self.dir)/fault/G_ema.safetensors"))
    }

    @Test func domainFIDFallsDuringAShortRun() throws {
        try requireReleaseBinary()
        var r = runShell(".build/release/viscoin train-classifier --data \(Self.prepared.path) --run \(Self.dir)/f --arch tiny --lr 2e-3 "
                         + "--epochs 4 --batch-size 32 --log-every 100", timeout: 300)
        #expect(r.status == 0, "\(r.output)")
        r = runShell("launch/run -n 2 -- train-gan --data \(Self.prepared.path) --run \(Self.dir)/fid --cfg tiny --batch 16 --batch-gpu 8 --kimg 1.5 "
                     + "--kimg-per-tick 0.75 --snap 1 --metrics fid256 --detector classifier:\(Self.dir)/f/classifier.safetensors", timeout: 600)
        #expect(r.status == 0, "\(r.output)")
        let fids = MetricsLines.values("\(Self.dir)/fid/metrics.jsonl", kind: "metric", key: "fid")
        #expect(fids.count >= 2 && fids.last! < 0.5 * fids.first!, "FID over the run: \(fids)")
        let report = try Files.readText("\(Self.dir)/fid/report.html")
        #expect(report.contains("domain FID") && report.contains("data:image/png;base64,"))
    }

    /// --resume-network with a converted snapshot (tensors G.*, D.*, G_ema.*, as
    /// tools/export_safetensors.py writes a network pickle): copied by name, the extra 8-layer
    /// mapping tensors dropped and named, what the file lacks keeps its initialisation.
    @Test func startsFromAConvertedNetworkSnapshot() throws {
        try requireReleaseBinary()
        var r = train(1, "source", "--max-steps 2 --metrics none")
        #expect(r.status == 0, "\(r.output)")
        let g = try SafeTensorsFile(path: "\(Self.dir)/source/G_ema.safetensors")
        var writer = SafeTensorsWriter()
        for prefix in ["G.", "G_ema."] {
            for name in g.names { try writer.add(name: prefix + name, shape: try g.info(name).shape, floats: try g.floats(name)) }
            try writer.add(name: prefix + "mapping.fc2.weight", shape: [64, 64], floats: [Float](repeating: 0.5, count: 64 * 64))
        }
        try writer.write(to: "\(Self.dir)/snapshot.safetensors")
        r = train(1, "resumed-network", "--max-steps 2 --metrics none --resume-network \(Self.dir)/snapshot.safetensors")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("resume-network: G: 1 tensors without a counterpart dropped: mapping.fc2.weight"), "\(r.output)")
        #expect(r.output.contains("resume-network: D: ") && r.output.contains("keep their initialisation"), "\(r.output)")
        #expect(r.output.contains("ADA at 100 kimg"), "\(r.output)")
        r = train(1, "bad-network", "--max-steps 1 --metrics none --resume-network \(Self.dir)/source/config.json")
        #expect(r.status != 0 && r.output.contains("config.json"), "\(r.output)")
    }
}
