// Bad input to the model, training and tool commands, table-driven like BadInputTests: each
// case is a command, the phrase its message must contain and a non-zero exit, and afterwards
// nothing under the test folder was created or changed. The fixtures are real: a tiny
// generator and classifier trained here, their copies with one NaN weight, latents with NaN,
// infinite or no rows, datasets with a missing or an empty image, checkpoints with a tampered
// manifest or a truncated shard, and junk in VISCOIN_* variables.
import Common
import Foundation
import SafeTensors
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct BadModelInputTests {
    static let dir = makeTestFolder("badmodel")

    static let setup: (status: Bool, output: String) = {
        let m = dir, b = ".build/release/viscoin"
        let r = runShell("""
            \(b) prepare demo --out \(m)/demo --count 90 --size 32 && \
            \(b) train-gan --data \(m)/demo --run \(m)/gan --cfg tiny --batch 8 --batch-gpu 8 --kimg 0.02 --kimg-per-tick 0.02 --metrics none && \
            cp \(m)/gan/G_ema.safetensors \(m)/G.safetensors && \
            \(b) train-classifier --data \(m)/demo --run \(m)/f --arch tiny --epochs 1 --batch-size 9 --eval-batch-size 9 && \
            cp \(m)/f/classifier.safetensors \(m)/F.safetensors && \
            mkdir -p \(m)/emptydir \(m)/one-r \(m)/one-f && cp \(m)/demo/00000/img00000000.png \(m)/one-r/ && \
            cp \(m)/demo/00000/img00000001.png \(m)/one-f/ && : > \(m)/empty.safetensors && echo garbage > \(m)/garbage.safetensors && \
            cp -r \(m)/demo \(m)/demo-missing && rm \(m)/demo-missing/00000/img00000003.png && \
            cp -r \(m)/demo \(m)/demo-empty && : > \(m)/demo-empty/00000/img00000004.png && \
            cp -r \(m)/f \(m)/tampered && cp -r \(m)/f \(m)/offstep && cp -r \(m)/f \(m)/truncated
            """, timeout: 600)
        guard r.status == 0 else { return (false, r.output) }
        do {
            try withOneNaN("\(m)/G.safetensors", "\(m)/G_nan.safetensors", tensor: "synthesis.b4.const")
            try withOneNaN("\(m)/F.safetensors", "\(m)/F_nan.safetensors", tensor: nil)
            try latents("\(m)/z_nan.safetensors", rows: 2, first: .nan)
            try latents("\(m)/z_inf.safetensors", rows: 1, first: .infinity)
            try latents("\(m)/z_empty.safetensors", rows: 0, first: 0)
            try editManifest("\(m)/tampered") { setting($0, ["state", "job", "epoch"], to: .int(-3)) }
            try editManifest("\(m)/offstep") { setting($0, ["state", "job", "loader_batch"], to: .int(100_000)) }
            let step = try newestCheckpoint("\(m)/truncated")
            let shard = step + "/shard-00000-of-00001.zst"
            let bytes = try Files.read(shard)
            try Files.writeAtomically(shard, bytes: Array(bytes.prefix(bytes.count / 2)))
        } catch {
            return (false, "\(error)")
        }
        return (true, r.output)
    }()

    static func newestCheckpoint(_ run: String) throws -> String {
        let names = try Files.list("\(run)/checkpoints").filter { $0.hasPrefix("step-") }.sorted()
        return "\(run)/checkpoints/\(names.last!)"
    }

    /// A copy of a weight file (metadata kept) whose tensor (default: the first float one) starts with NaN.
    static func withOneNaN(_ source: String, _ target: String, tensor: String?) throws {
        let file = try SafeTensorsFile(path: source)
        var writer = SafeTensorsWriter()
        writer.metadata = file.metadata.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let victim = tensor ?? file.tensors.first { $0.dtype == .F32 }!.name
        for info in file.tensors {
            if info.dtype == .I64 {
                try writer.add(name: info.name, shape: info.shape, int64s: try file.int64s(info.name))
            } else {
                var values = try file.floats(info.name)
                if info.name == victim { values[0] = .nan }
                try writer.add(name: info.name, shape: info.shape, floats: values)
            }
        }
        try writer.write(to: target)
    }

    /// z of the tiny generator (64 wide), `rows` rows, the first value `first`.
    static func latents(_ path: String, rows: Int, first: Float) throws {
        var values = (0..<(rows * 64)).map { Float($0 % 7) / 7 - 0.5 }
        if !values.isEmpty { values[0] = first }
        var writer = SafeTensorsWriter()
        try writer.add(name: "z", shape: [rows, 64], floats: values)
        try writer.write(to: path)
    }

    static func editManifest(_ run: String, _ edit: (JSONValue) -> JSONValue) throws {
        let path = try newestCheckpoint(run) + "/manifest.json"
        let manifest = try JSONValue.parse(try Files.read(path))
        try Files.writeAtomically(path, text: edit(manifest).serialized(pretty: true) + "\n")
    }

    static func setting(_ value: JSONValue, _ path: [String], to new: JSONValue) -> JSONValue {
        guard let head = path.first, case .object(var members) = value, let i = members.firstIndex(where: { $0.0 == head }) else { return new }
        members[i].1 = setting(members[i].1, Array(path.dropFirst()), to: new)
        return .object(members)
    }

    static let classifier = "train-classifier --data DIR/demo --run DIR/new --arch tiny"
    static let gan = "train-gan --data DIR/demo --run DIR/new --cfg tiny"
    static let viscoin = "train-viscoin --classifier DIR/F.safetensors --generator DIR/G.safetensors --data DIR/demo --run DIR/new"
    static let generate = "generate --network DIR/G.safetensors --outdir DIR/new"
    static let fid = "fid --detector classifier:DIR/F.safetensors"
    static let resume = "--epochs 1 --batch-size 9 --eval-batch-size 9 --resume latest"

    @Test(arguments: [
        // Datasets: checked at load, before any work.
        ("\(classifier.replacingOccurrences(of: "DIR/demo ", with: "DIR/demo-missing "))", "missing or not a regular file (1 of the 90 images"),
        ("\(classifier.replacingOccurrences(of: "DIR/demo ", with: "DIR/demo-empty "))", "is empty (1 of the 90 images"),
        ("\(classifier.replacingOccurrences(of: "DIR/demo ", with: "DIR/emptydir "))", "not a prepared dataset"),
        ("\(classifier.replacingOccurrences(of: "DIR/demo ", with: "DIR/nonexist "))", "no such dataset folder"),
        ("\(classifier) --batch-size 100000", "cannot fill one batch"),
        // Classifier flags: ranges and meanings.
        ("\(classifier.replacingOccurrences(of: "tiny", with: "nosuch"))", "is invalid for '--arch"),
        ("\(classifier) --epochs 0", "--epochs must be at least 1"),
        ("\(classifier) --lr nan", "--lr must be positive"),
        ("\(classifier) --lr inf", "--lr must be positive"),
        ("\(classifier) --lr 0", "--lr must be positive"),
        ("\(classifier) --momentum -1", "--momentum must be in [0, 1)"),
        ("\(classifier) --beta1 1.5", "--beta1 and --beta2 must be in [0, 1)"),
        ("\(classifier) --eps -1", "--eps must be positive"),
        ("\(classifier) --keep 0", "--keep must be at least 1"),
        ("\(classifier) --log-every -1", "--log-every must be 0 or positive"),
        ("\(classifier) --max-steps 0", "--max-steps must be at least 1"),
        ("\(classifier) --accumulate 0", "--accumulate must be at least 1"),
        ("\(classifier) --clip-grad-norm -1", "--clip-grad-norm must be positive"),
        ("\(classifier) --step-size 0", "--step-size must be at least 1"),
        ("\(classifier) --optimizer adamx", "is invalid for '--optimizer"),
        ("\(classifier) --batch-size 0", "--batch-size must be at least 1"),
        ("\(classifier) --eval-batch-size 0", "--eval-batch-size 0 must be a positive multiple"),
        ("\(classifier) --image-size 0", "--image-size must be at least 8"),
        ("\(classifier) --image-size 7", "--image-size must be at least 8"),
        ("\(classifier) --gamma -1", "--gamma must be positive"),
        ("\(classifier) --weight-decay -1", "--weight-decay must be 0 or positive"),
        ("\(classifier) --checkpoint-every -1", "--checkpoint-every must be 0"),
        ("\(classifier) --max-bad-steps -2", "--max-bad-steps must be 0"),
        ("\(classifier) --checkpoint-dir ''", "--checkpoint-dir must not be empty"),
        ("train-classifier --data DIR/demo --run '' --arch tiny", "a run folder is required"),
        ("\(classifier) --seed -1", "is invalid for '--seed"),
        ("\(classifier) --threads 2000", "--threads must be between 1 and 1024"),
        // Weight files: type, damage, NaN, another model.
        ("\(classifier) --pretrained DIR/garbage.safetensors", "header length"),
        ("\(classifier) --pretrained DIR/empty.safetensors", "file too small"),
        ("\(classifier) --pretrained DIR/G.safetensors", "not a backbone for --arch tiny"),
        ("\(classifier) --pretrained DIR/F_nan.safetensors", "holds 1 NaN or infinite value(s)"),
        // Checkpoints: what resume rejects, named.
        ("\(classifier) --resume DIR/nonexist", "no such checkpoint directory"),
        ("train-classifier --data DIR/demo --run DIR/tampered --arch tiny \(resume)", "state.job.epoch: -3 is not within"),
        ("train-classifier --data DIR/demo --run DIR/offstep --arch tiny \(resume)", "is not a step boundary"),
        ("train-classifier --data DIR/demo --run DIR/truncated --arch tiny \(resume)", "truncated?"),
        ("train-classifier --data DIR/demo --run DIR/f --arch resnet18 \(resume)", "was written with --arch tiny"),
        ("inspect DIR/tampered/checkpoints", "state.job.epoch: -3 is not within"),
        ("inspect DIR/truncated/checkpoints", "truncated?"),
        ("inspect DIR/nonexist", "No such file"),
        ("inspect DIR/garbage.safetensors", "header length"),
        ("inspect DIR/emptydir", "neither a checkpoint"),
        // Environment variables the binary reads.
        ("VISCOIN_THREADS=abc env", "VISCOIN_THREADS='abc': must be an integer"),
        ("VISCOIN_POOL_MB=-5 env", "VISCOIN_POOL_MB='-5'"),
        ("VISCOIN_FORCE_MPI=yes env", "VISCOIN_FORCE_MPI='yes': must be 0 or 1"),
        ("VISCOIN_DDP_MODE=fast env", "VISCOIN_DDP_MODE='fast'"),
        ("VISCOIN_FAULT_STEP=xyz inspect DIR/f/checkpoints", "VISCOIN_FAULT_STEP='xyz'"),
        // generate: seeds, latents, truncation, networks.
        ("\(generate) --seeds 0-3 --batch 0", "--batch must be positive"),
        ("\(generate) --seeds ''", "--seeds ''"),
        ("\(generate) --seeds 1,,2", "--seeds '1,,2'"),
        ("\(generate) --seeds 0-99999999999", "--seeds '0-99999999999'"),
        ("\(generate) --seeds 5-2", "--seeds '5-2'"),
        ("\(generate) --seeds 0-3 --noise-mode loud", "is invalid for '--noise-mode"),
        ("\(generate) --seeds 0-3 --trunc nan", "--trunc must be a finite number"),
        ("\(generate) --seeds 0-3 --trunc inf", "--trunc must be a finite number"),
        ("\(generate) --latents DIR/z_nan.safetensors", "z holds NaN or infinite values"),
        ("\(generate) --latents DIR/z_inf.safetensors", "z holds NaN or infinite values"),
        ("\(generate) --latents DIR/z_empty.safetensors", "z must be [N >= 1, 64], found [0, 64]"),
        ("generate --network DIR/F.safetensors --outdir DIR/new --seeds 0-1", "holds a classifier, expected a generator"),
        ("generate --network DIR/G_nan.safetensors --outdir DIR/new --seeds 0-1", "synthesis.b4.const holds 1 NaN or infinite value(s)"),
        ("generate --network DIR/garbage.safetensors --outdir DIR/new --seeds 0-1", "header length"),
        ("generate --network DIR/G.safetensors --outdir DIR/demo/dataset.json --seeds 0-1", "exists and is not a directory"),
        // fid: sample counts, detectors, exclusive options.
        ("\(fid) --real DIR/one-r --fake DIR/one-f", "FID needs at least 2 images on each side"),
        ("\(fid) --real DIR/demo --fake DIR/emptydir", "no PNG, JPEG or TIFF images found"),
        ("fid --real DIR/demo --fake DIR/demo --detector DIR/garbage.safetensors", "header length"),
        ("fid --real DIR/demo --fake DIR/demo --detector classifier:DIR/nonexist.safetensors", "No such file"),
        ("\(fid) --real DIR/demo --fake-network DIR/G.safetensors --num 1", "--num at least 2"),
        ("\(fid) --real DIR/demo --fake-network DIR/G_nan.safetensors --num 8", "holds 1 NaN or infinite value(s)"),
        ("\(fid) --real DIR/demo --real-stats DIR/garbage.safetensors --fake DIR/demo", "exactly one of --real or --real-stats"),
        ("\(fid) --real DIR/demo --fake DIR/demo --fake-network DIR/G.safetensors", "exactly one of --fake or --fake-network"),
        // convert.
        ("convert --model classifier --classes 9 --input DIR/garbage.safetensors --output DIR/new.safetensors", "error: DIR/garbage.safetensors: header length"),
        ("convert --model classifier --classes 9 --arch tiny --input DIR/G.safetensors --output DIR/new.safetensors --non-strict", "no tensor fits a classifier"),
        ("convert --model generator --input DIR/G_nan.safetensors --output DIR/new.safetensors", "holds 1 NaN or infinite value(s)"),
        ("convert --model classifier --input DIR/F.safetensors --output DIR/new.safetensors", "--classes is required"),
        // train-gan.
        ("\(gan) --batch 0 --metrics none", "--batch must be at least 1"),
        ("\(gan) --batch 8 --batch-gpu 3 --metrics none", "must be divisible by ranks x --batch-gpu"),
        ("\(gan) --gamma -1 --metrics none", "--gamma must be 0 or positive"),
        ("\(gan) --kimg 0 --metrics none", "--kimg must be positive"),
        ("\(gan) --resume-network DIR/F.safetensors --metrics none", "no tensor named G.*, D.* or G_ema.*"),
        ("\(gan.replacingOccurrences(of: "tiny", with: "nosuch"))", "is invalid for '--cfg"),
        ("\(gan) --metrics fid50q", "is invalid for '--metrics"),
        ("\(gan) --metrics none --snap -1", "--snap must be at least 1"),
        ("\(gan) --metrics none --target 2", "--target must be in (0, 1)"),
        ("\(gan) --metrics none --p 1.5", "--p must be in [0, 1]"),
        ("\(gan) --metrics none --ema-kimg -1", "--ema-kimg must be 0 or positive"),
        ("\(gan)", "needs --detector"),
        // train-viscoin.
        ("\(viscoin) --concepts 0", "--concepts and --latent-channels must be positive"),
        ("\(viscoin) --latent-channels 0", "--concepts and --latent-channels must be positive"),
        ("\(viscoin) --batch-size 0", "--batch-size 0 must be a positive multiple"),
        ("\(viscoin) --iterations 0", "--iterations must be at least 1"),
        ("\(viscoin.replacingOccurrences(of: "--classifier DIR/F", with: "--classifier DIR/G"))", "holds a generator, expected a classifier"),
        ("\(viscoin.replacingOccurrences(of: "--generator DIR/G", with: "--generator DIR/F"))", "holds a classifier, expected a generator"),
        ("\(viscoin.replacingOccurrences(of: "--classifier DIR/F", with: "--classifier DIR/F_nan"))", "holds 1 NaN or infinite value(s)"),
        // The VisCoIN tools.
        ("evaluate --viscoin DIR/nonexist.safetensors --data DIR/demo --out DIR/new.json", "No such file"),
        ("evaluate --viscoin DIR/G.safetensors --data DIR/demo --out DIR/new.json", "holds a generator, expected a viscoin"),
        ("amplify --viscoin DIR/G.safetensors --data DIR/demo --outdir DIR/new", "exactly one of --threshold, --top-k or --concepts"),
        ("concepts --viscoin DIR/G.safetensors --data DIR/demo --outdir DIR/new", "expected a viscoin"),
        ("heatmaps --viscoin DIR/G.safetensors --data DIR/demo --outdir DIR/new", "expected a viscoin"),
        ("explore --viscoin DIR/G.safetensors --data DIR/demo --port 70000", "--port must be in 0...65535"),
        ("report --run DIR/emptydir", "not a train-viscoin run folder"),
        // prepare.
        ("prepare demo --out DIR/new --count 0", "--count must be at least 9"),
        ("prepare demo --out DIR/new --size 0", "--size must be a power of two"),
        ("prepare demo --out DIR/new --size 7", "--size must be a power of two"),
        ("prepare demo --out DIR/new --test-fraction 1.5", "--test-fraction must be in [0, 1)"),
        ("prepare folder --root DIR/nonexist --out DIR/new --size 32", "no such dataset folder"),
        ("prepare folder --root DIR/emptydir --out DIR/new --size 32", "has no class sub-folders"),
        ("prepare cub --root DIR/emptydir --out DIR/new", "classes.txt: missing"),
        // bench.
        ("bench blas --repeats 0", "--repeats must be between 1 and 10000"),
        ("bench blas --allreduce-floats -5", "--allreduce-floats must be between"),
        ("bench gan --batch 0", "--batch must be between 1 and 1024"),
        ("bench train --resolution 7", "--resolution must be between 32 and 1024"),
        ("bench viscoin --resolution 64", "--resolution must be 256 or 32"),
        ("bench models --only foo", "--only must be resnet, stylegan, tiny or all"),
        ("selftest nosuch", "Unexpected argument 'nosuch'"),
        // One style: `error:` lines; flag errors show the subcommand's usage.
        ("train-classifier --data DIR/demo --run DIR/new --arch nosuch", "Usage: viscoin train-classifier"),
        ("generate --network DIR/G.safetensors --outdir DIR/new --seeds 0-2000000", "holds more than 1000000 seeds"),
        ("prepare demo --out . --force --count 9", "not a prepared dataset"),
        ("convert --model classifier --classes 5 --arch tiny --input DIR/F.safetensors --output DIR/new.safetensors",
         "wrong shape: linear.weight expected [5, 128], found [9, 128]"),
    ])
    func refusedWithANamedErrorAndNothingChanged(_ command: String, _ phrase: String) throws {
        try requireReleaseBinary()
        try #require(Self.setup.status, "setup failed: \(Self.setup.output)")
        let d = Self.dir
        let before = BadInputTests.snapshot(d)
        var line = command.replacingOccurrences(of: "DIR", with: d)
        // Leading VAR=value words are the command's environment.
        var environment = ""
        while let first = line.split(separator: " ").first, first.contains("="), first.hasPrefix("VISCOIN_") {
            environment += first + " "
            line = String(line.dropFirst(first.count + 1))
        }
        let r = runShell("\(environment)timeout 60 .build/release/viscoin \(line)", timeout: 90)
        let expected = phrase.replacingOccurrences(of: "DIR", with: d)
        #expect(r.status != 0 && r.status != 124, "\(line): exit \(r.status) (124 = hung)\n\(r.output)")
        #expect(r.output.contains(expected), "\(line): the message must contain '\(expected)':\n\(r.output)")
        #expect(!r.output.contains("Fatal error") && !r.output.contains("Illegal instruction"), "\(line) trapped:\n\(r.output)")
        #expect(!r.output.contains("Error: ") && r.output.contains("error: "), "\(line): one error style (`error: ...`):\n\(r.output)")
        #expect(BadInputTests.snapshot(d) == before, "\(line) changed files under \(d)")
    }

    /// Help is not an error: every form prints the text on stdout and exits 0.
    @Test(arguments: [
        ("--help", ["USAGE: viscoin <subcommand>", "train-viscoin", "explore"]),
        ("help", ["USAGE: viscoin <subcommand>", "train-classifier"]),
        ("help train-gan", ["USAGE: viscoin train-gan", "--kimg"]),
        ("train-classifier --help", ["USAGE: viscoin train-classifier", "--arch", "--epochs"]),
        ("bench models -h", ["USAGE: viscoin bench models", "--only"]),
    ])
    func helpPrintsTheUsageAndExitsZero(_ arguments: String, _ phrases: [String]) throws {
        try requireReleaseBinary()
        let r = runShell("timeout 60 .build/release/viscoin \(arguments) 2>/dev/null", timeout: 90)
        #expect(r.status == 0, "\(arguments): exit \(r.status)\n\(r.output)")
        for phrase in phrases { #expect(r.output.contains(phrase), "\(arguments): no '\(phrase)' in\n\(r.output)") }
        #expect(!r.output.contains("error:"), "\(arguments):\n\(r.output)")
    }

    @Test func aDivergingRunStopsAfterMaxBadSteps() throws {
        try requireReleaseBinary()
        try #require(Self.setup.status, "setup failed: \(Self.setup.output)")
        let d = Self.dir
        let r = runShell(".build/release/viscoin train-classifier --data \(d)/demo --run \(d)/diverged --arch tiny --epochs 10 --batch-size 9 "
                         + "--eval-batch-size 9 --optimizer sgd --lr 1e30 --max-bad-steps 5", timeout: 120)
        #expect(r.status == 1, "\(r.output)")
        #expect(r.output.contains("5 steps in a row") && r.output.contains("non-finite gradients") && r.output.contains("--max-bad-steps 5 stopped it"), "\(r.output)")
        #expect(!r.output.contains("Fatal error"), "\(r.output)")
    }

    /// Starts `command` in the background, waits until `ready` (a shell test) holds, sends
    /// SIGINT to the process and returns its output and exit status.
    func interrupted(_ command: String, when ready: String) -> (output: String, status: Int32) {
        let log = "\(Self.dir)/interrupt-\(UInt64.random(in: 0...UInt64.max)).log"
        let r = runShell("""
            .build/release/viscoin \(command) > \(log) 2>&1 &
            pid=$!
            for i in $(seq 1 600); do \(ready) && break; sleep 0.05; done
            kill -INT $pid
            status=0; wait $pid || status=$?
            echo $status > \(log).status
            """, timeout: 300)
        let output = ((try? Files.readText(log)) ?? "") + r.output
        let status = Int32(((try? Files.readText(log + ".status")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        return (output, status)
    }

    @Test func ctrlCDuringPrepareLeavesNothingAndSaysSo() throws {
        try requireReleaseBinary()
        try #require(Self.setup.status, "setup failed: \(Self.setup.output)")
        let out = "\(Self.dir)/interrupted-prepare"
        let r = interrupted("prepare demo --out \(out) --count 4000 --size 64", when: "[ -d \(out).partial/00001 ]")
        #expect(r.status == 130, "\(r.output)")
        #expect(r.output.contains("prepare: stopped by SIGINT: nothing was written to \(out) (the partial output was removed)"), "\(r.output)")
        #expect(!Files.exists(out) && !Files.exists(out + ".partial"), "left behind")
    }

    @Test func ctrlCDuringTrainingWritesACheckpointAndTheRunContinuesBitwise() throws {
        try requireReleaseBinary()
        try #require(Self.setup.status, "setup failed: \(Self.setup.output)")
        let d = Self.dir
        let options = "--data \(d)/demo --arch tiny --epochs 30 --batch-size 9 --eval-batch-size 9 --log-every 50"
        let r = interrupted("train-classifier \(options) --run \(d)/stopped", when: "[ -e \(d)/stopped/checkpoints/latest ]")
        #expect(r.status == 75, "\(r.output)")
        let line = try #require(r.output.split(separator: "\n").first { $0.hasPrefix("stopped by SIGINT after step ") }, "\(r.output)")
        #expect(line.contains("continue with --resume latest"), "\(line)")
        #expect(runShell(".build/release/viscoin inspect \(d)/stopped/checkpoints").status == 0)
        // An interrupted removal of an old checkpoint (a step folder without its manifest) is
        // cleaned up by the next checkpoint.
        try Files.createDirectory("\(d)/stopped/checkpoints/step-00000001")
        try Files.writeAtomically("\(d)/stopped/checkpoints/step-00000001/shard-00000-of-00001.zst", text: "x")
        var c = runShell(".build/release/viscoin train-classifier \(options) --run \(d)/stopped --resume latest", timeout: 300)
        #expect(c.status == 0, "\(c.output)")
        #expect(!Files.exists("\(d)/stopped/checkpoints/step-00000001"), "the leftover step folder was not removed")
        c = runShell(".build/release/viscoin train-classifier \(options) --run \(d)/straight", timeout: 300)
        #expect(c.status == 0, "\(c.output)")
        #expect(try Files.read("\(d)/stopped/classifier.safetensors") == Files.read("\(d)/straight/classifier.safetensors"))
    }

    @Test func readOnlyAndFullDisksAreNamedAtStartAndLeaveNothing() throws {
        try requireReleaseBinary()
        try #require(Self.setup.status, "setup failed: \(Self.setup.output)")
        guard getuid() == 0 else {
            print("BadModelInputTests: skipping the read-only and full disk test: mounting a tmpfs needs root")
            return
        }
        let d = Self.dir, readOnly = "\(d)/read-only", full = "\(d)/full"
        let mounted = runShell("mkdir -p \(readOnly) \(full) && mount -t tmpfs -o size=64k,ro tmpfs \(readOnly) && mount -t tmpfs -o size=256k tmpfs \(full)")
        defer { _ = runShell("umount \(readOnly); umount \(full); rmdir \(readOnly) \(full)") }
        guard mounted.status == 0 else {
            print("BadModelInputTests: skipping the read-only and full disk test: \(mounted.output)")
            return
        }
        // A read-only place is refused before any work, naming the flag and the folder.
        for (command, flag) in [("prepare demo --out \(readOnly)/x --count 9", "--out"),
                                ("train-classifier --data \(d)/demo --run \(readOnly)/run --arch tiny", "--run"),
                                ("generate --network \(d)/G.safetensors --seeds 0-1 --outdir \(readOnly)/g", "--outdir"),
                                ("convert --model generator --input \(d)/G.safetensors --output \(readOnly)/G.safetensors", "--output")] {
            let r = runShell("timeout 60 .build/release/viscoin \(command)", timeout: 90)
            #expect(r.status == 64 && r.output.contains("error: \(flag) \(readOnly)/") && r.output.contains("is not writable (Read-only file system)"), "\(command): \(r.output)")
        }
        // A disk that fills up: the error names the file, and the partial output is gone.
        let r = runShell("timeout 120 .build/release/viscoin prepare demo --out \(full)/x --count 900 --size 64", timeout: 150)
        #expect(r.status == 1 && r.output.contains("No space left on device") && r.output.contains("the partial output was removed"), "\(r.output)")
        #expect(((try? Files.list(full)) ?? ["?"]).isEmpty, "left on the full disk: \((try? Files.list(full)) ?? [])")
    }
}
