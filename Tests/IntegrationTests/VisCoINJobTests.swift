// The VisCoIN pipeline as users run it, with real mpirun, on the demo set: a classifier and a
// generator trained for a moment, then train-viscoin: 2 ranks agree with 1 rank (same global
// batch) within float tolerance; N + resume + N equals 2N bitwise; a killed rank is survived by
// --auto-resume; evaluate gives the same figures on 1 and 2 ranks; amplify, concepts and report
// work on the result; and a short run's explainer agrees with f far more often than chance.
import Common
import SafeTensors
import Testing

@Suite(.serialized) struct VisCoINJobTests {
    static let dir: String = {
        let d = "/tmp/viscoin-it-viscoin-\(UInt64.random(in: 0...UInt64.max))"
        try? Files.createDirectory(d)
        return d
    }()
    /// The data, a classifier and a generator, prepared once.
    static let setup: ProcessResult = {
        let d = dir
        return runShell(".build/release/viscoin prepare demo --out \(d)/demo --count 540 --size 32 --seed 3 && "
                        + ".build/release/viscoin train-classifier --data \(d)/demo --run \(d)/f --arch tiny --lr 2e-3 --epochs 6 --batch-size 32 --augment flip --log-every 100 && "
                        + ".build/release/viscoin train-gan --data \(d)/demo --run \(d)/gan --cfg tiny --batch 16 --batch-gpu 16 --kimg 0.8 --kimg-per-tick 0.8 --metrics none",
                        timeout: 900)
    }()

    /// A train-viscoin run of the prepared networks. 32 concepts, as the demo uses: with 8, the
    /// sparsity term can switch every concept off in a short run (then Theta predicts one
    /// class), depending on last-bit differences in the classifier.
    func train(_ ranks: Int, _ run: String, _ extra: String, autoResume: Int? = nil, env: String = "",
               sourceLocation: SourceLocation = #_sourceLocation) -> ProcessResult {
        #expect(Self.setup.status == 0, "setup failed: \(Self.setup.output)", sourceLocation: sourceLocation)
        let resume = autoResume.map { "--auto-resume \($0) " } ?? ""
        let d = Self.dir
        return runShell("\(env) launch/run -n \(ranks) \(resume)-- train-viscoin --classifier \(d)/f/classifier.safetensors --generator \(d)/gan/G_ema.safetensors "
                        + "--data \(d)/demo --run \(d)/\(run) --concepts 32 --latent-channels 16 --batch-size 8 --augment flip --test-every 1000 \(extra)", timeout: 900)
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

    @Test func twoRanksAgreeWithOneRank() throws {
        try requireReleaseBinary()
        var r = train(1, "one", "--iterations 3 --accumulate 2 --threads 1 --log-every 1")
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "two", "--iterations 3 --log-every 1")
        #expect(r.status == 0, "\(r.output)")
        // Every draw belongs to a sample, so the same images, latents, noise and dropout meet the
        // same networks: the losses agree up to summation order.
        for key in ["train_total_loss", "train_rec_l1", "train_gan_loss", "train_ortho_loss"] {
            let one = MetricsLines.values("\(Self.dir)/one/metrics.jsonl", kind: "train", key: key)
            let two = MetricsLines.values("\(Self.dir)/two/metrics.jsonl", kind: "train", key: key)
            #expect(one.count == 3 && two.count == 3, "\(key): \(one) vs \(two)")
            for (a, b) in zip(one, two) { #expect(abs(a - b) <= 1e-5 * abs(a), "\(key): \(one) vs \(two)") }
        }
        let a = try floats("\(Self.dir)/one/viscoin.safetensors"), b = try floats("\(Self.dir)/two/viscoin.safetensors")
        #expect(a.keys.sorted() == b.keys.sorted())
        // Adam's first steps move a weight by about lr * sign(gradient): a gradient within rounding
        // of zero may move either way, nothing else.
        var total = 0, differing = 0
        for (name, x) in a where name.hasPrefix("concept_extractor.") || name.hasPrefix("explainer.") || name.hasPrefix("gan.mapping.") {
            let y = b[name]!
            let scale = max(x.map(abs).max() ?? 0, 1e-3)
            total += x.count
            differing += zip(x, y).filter { abs($0 - $1) > 1e-4 * scale }.count
        }
        #expect(total > 0 && Double(differing) <= 0.01 * Double(total), "\(differing) of \(total) trained weights differ")
    }

    @Test func resumeIsBitwiseIdentical() throws {
        try requireReleaseBinary()
        var r = train(2, "straight", "--iterations 12")
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "resumed", "--iterations 12 --max-steps 6")
        #expect(r.status == 0, "\(r.output)")
        r = train(2, "resumed", "--iterations 12 --resume latest")
        #expect(r.status == 0 && r.output.contains("(step 6,"), "\(r.output)")
        let straight = hashes("straight"), resumed = hashes("resumed")
        #expect(straight.contains("concept_extractor:") && straight.contains("gan_optimizer:") && straight.contains("mapping:"), "\(straight)")
        #expect(straight == resumed)
        #expect(try Files.read("\(Self.dir)/straight/viscoin.safetensors") == Files.read("\(Self.dir)/resumed/viscoin.safetensors"))
    }

    @Test func killedRankIsSurvivedByAutoResume() throws {
        try requireReleaseBinary()
        let r = train(2, "fault", "--iterations 10 --checkpoint-every 4 --resume latest", autoResume: 2,
                      env: "VISCOIN_FAULT_STEP=6 VISCOIN_FAULT_ONCE=\(Self.dir)/fault-once")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("fault injection: killing rank 1 after step 6") && r.output.contains("(step 4,"), "\(r.output)")
        #expect(Files.exists("\(Self.dir)/fault/viscoin.safetensors"))
    }

    @Test func shortRunLearnsAndTheToolsWorkOnIt() throws {
        try requireReleaseBinary()
        let d = Self.dir
        var r = train(2, "learn", "--iterations 240 --lr 2e-3 --lr-schedule constant --cd-fid-iteration 20 --log-every 60")
        #expect(r.status == 0, "\(r.output)")
        let v = "\(d)/learn/viscoin.safetensors"
        r = runShell("launch/run -n 2 -- evaluate --viscoin \(v) --data \(d)/demo --out \(d)/eval2.json", timeout: 300)
        #expect(r.status == 0, "\(r.output)")
        r = runShell(".build/release/viscoin evaluate --viscoin \(v) --data \(d)/demo --out \(d)/eval1.json", timeout: 300)
        #expect(r.status == 0, "\(r.output)")
        let e2 = try JSONValue.parse(try Files.readText("\(d)/eval2.json")), e1 = try JSONValue.parse(try Files.readText("\(d)/eval1.json"))
        for key in ["images", "classifier_accuracy", "explainer_accuracy", "fidelity"] { #expect(e1[key] == e2[key], "\(key): \(e1[key]!) vs \(e2[key]!)") }
        #expect(abs((e1["l1"]?.doubleValue ?? 0) - (e2["l1"]?.doubleValue ?? 1)) < 1e-6)
        // An explainer that only guesses agrees with f on ~1 image in 9; this one has learned.
        let fidelity = e1["fidelity"]?.doubleValue ?? 0
        #expect(fidelity > 25, "fidelity \(fidelity)%")
        r = runShell(".build/release/viscoin amplify --viscoin \(v) --data \(d)/demo --top-k 2 --images 0,1 --faithfulness 8 --outdir \(d)/amp", timeout: 300)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("faithfulness over 8 test images") && Files.exists("\(d)/amp/amplify.json"), "\(r.output)")
        r = runShell("launch/run -n 2 -- concepts --viscoin \(v) --data \(d)/demo --outdir \(d)/concepts", timeout: 300)
        #expect(r.status == 0 && r.output.contains("alignment with the true concepts"), "\(r.output)")
        #expect(Files.exists("\(d)/concepts/concepts.json") && Files.exists("\(d)/concepts/class-concepts.png"))
        r = runShell(".build/release/viscoin report --run \(d)/learn", timeout: 300)
        #expect(r.status == 0, "\(r.output)")
        let html = try Files.readText("\(d)/learn/report.html")
        #expect(html.contains("Concept amplification") && html.contains("Alignment with the true concepts") && html.contains("data:image/png;base64,"))
        r = runShell(".build/release/viscoin amplify --viscoin \(v) --data \(d)/demo --top-k 2 --concepts 1,2 --outdir \(d)/amp2")
        #expect(r.status != 0 && r.output.contains("exactly one of"), "\(r.output)")
    }
}
