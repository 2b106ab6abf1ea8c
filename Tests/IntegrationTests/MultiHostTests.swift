// Multi-host operation on a simulated cluster (cluster/sim: three network namespaces on this
// machine joined by a bridge, ranks on different hosts talking TCP): a 3-host run equals 3
// ranks on one host and resumes bitwise, so do the GAN and VisCoIN trainers on 2 hosts, node-local checkpoints resume on the same hosts, and
// a killed remote rank, a killed remote daemon or a cut link end the job within seconds, after
// which launch/run --auto-resume finishes it on the hosts still up; a short outage is survived.
// Skipped, with the reason printed, where network namespaces cannot be created (not root).
import Common
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One simulated cluster of the tests: its own prefix, subnet and state folder, so that a
/// cluster a user has started is left alone.
enum SimulatedCluster {
    static let dir = "/tmp/viscoin-it-sim-\(UInt64.random(in: 0...UInt64.max))"
    static let prefix = "vit"
    static let environment = "VISCOIN_SIM_DIR=\(dir) VISCOIN_SIM_PREFIX=\(prefix) VISCOIN_SIM_SUBNET=10.213.93"
    static func host(_ i: Int) -> String { "\(prefix)\(i)" }

    /// Whether this machine can run it (checked once by starting and removing one).
    static let available: Bool = {
        guard getuid() == 0 else {
            print("MultiHostTests: skipped: network namespaces need root (cluster/sim/up)")
            return false
        }
        let r = runShell("\(environment) cluster/sim/up 1 && \(environment) cluster/sim/down", timeout: 60)
        if r.status != 0 { print("MultiHostTests: skipped: cannot create network namespaces here: \(r.output)") }
        return r.status == 0
    }()

    /// Starts `hosts` hosts, runs `body`, removes them (also when `body` fails).
    static func with(hosts: Int, _ body: () throws -> Void) throws {
        let up = runShell("\(environment) cluster/sim/up \(hosts)", timeout: 60)
        try #require(up.status == 0, "cluster/sim/up failed: \(up.output)")
        defer { _ = runShell("\(environment) cluster/sim/down", timeout: 60) }
        try body()
    }

    /// A command line run on the simulated cluster through launch/run.
    static func run(_ ranks: Int, _ launchOptions: String = "", _ arguments: String) -> String {
        "\(environment) cluster/sim/run -n \(ranks) --timeout 600 \(launchOptions) -- \(arguments)"
    }

    static func exec(_ host: Int, _ command: String) -> String { "\(environment) cluster/sim/exec \(self.host(host)) \(command)" }
}

@Suite(.serialized, .enabled("needs root and network namespaces") { SimulatedCluster.available })
struct MultiHostTests {
    static let dir = makeTestFolder("multihost")
    static let prepared: (path: String, result: ProcessResult) = {
        let path = dir + "/demo"
        return (path, runShell(".build/release/viscoin prepare demo --out \(path) --count 900 --size 32 --seed 1"))
    }()

    /// train-classifier with a global batch that 3 and 2 ranks divide.
    func training(_ run: String, _ extra: String, data: String? = nil) -> String {
        "train-classifier --data \(data ?? Self.prepared.path) --run \(Self.dir)/\(run) --arch tiny --batch-size 36 --eval-batch-size 36 "
            + "--lr 2e-3 --log-every 20 --augment train \(extra)"
    }

    func requireData() throws {
        try requireReleaseBinary()
        try #require(Self.prepared.result.status == 0, "prepare demo failed: \(Self.prepared.result.output)")
    }

    /// Every complete checkpoint directory of a run verifies (none is complete-looking but broken).
    func expectEveryCheckpointVerifies(_ run: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let folder = "\(Self.dir)/\(run)/checkpoints"
        let complete = try Files.list(folder).filter { $0.hasPrefix("step-") && !$0.hasSuffix(".partial") }
        #expect(!complete.isEmpty, sourceLocation: sourceLocation)
        for name in complete {
            let r = runShell(".build/release/viscoin inspect \(folder)/\(name)")
            #expect(r.status == 0, "\(name) does not verify: \(r.output)", sourceLocation: sourceLocation)
        }
    }

    /// Simulated-host processes still running (none may outlive a failed job).
    func leftoverProcesses(_ host: Int) -> String {
        runShell("ip netns pids \(SimulatedCluster.host(host)) | xargs -r ps -o comm= -p").output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func threeHostsEqualThreeRanksOnOneHostResumeBitwiseAndTalkTCP() throws {
        try requireData()
        try SimulatedCluster.with(hosts: 3) {
            // viscoin env: three ranks on three hosts.
            var r = runShell(SimulatedCluster.run(3, "", "env"))
            #expect(r.status == 0, "\(r.output)")
            for i in 1...3 { #expect(r.output.contains("rank \(i - 1)/3 host \(SimulatedCluster.host(i))"), "\(r.output)") }

            // The same run on one host and on three: identical; 25 + resume + 15 steps identical too.
            r = runShell("launch/run -n 3 -- " + training("one-host", "--epochs 2"), timeout: 300)
            #expect(r.status == 0, "\(r.output)")
            r = runShell(SimulatedCluster.run(3, "", training("three-hosts", "--epochs 2")), timeout: 300)
            #expect(r.status == 0 && r.output.contains("3 rank(s)"), "\(r.output)")
            r = runShell(SimulatedCluster.run(3, "", training("resumed", "--epochs 2 --max-steps 25")), timeout: 300)
            #expect(r.status == 0, "\(r.output)")
            r = runShell(SimulatedCluster.run(3, "", training("resumed", "--epochs 2 --resume latest")), timeout: 300)
            #expect(r.status == 0 && r.output.contains("(step 25,"), "\(r.output)")
            let reference = checkpointHashes("\(Self.dir)/one-host/checkpoints")
            #expect(reference.contains("model:") && reference.contains("optimizer:"), "\(reference)")
            #expect(checkpointHashes("\(Self.dir)/three-hosts/checkpoints") == reference)
            #expect(checkpointHashes("\(Self.dir)/resumed/checkpoints") == reference)
            let weights = try Files.read("\(Self.dir)/one-host/classifier.safetensors")
            #expect(try Files.read("\(Self.dir)/three-hosts/classifier.safetensors") == weights)
            #expect(try Files.read("\(Self.dir)/resumed/classifier.safetensors") == weights)

            // bench blas reports the all-reduce across the hosts, and its bytes cross host 2's link.
            let counter = SimulatedCluster.exec(2, "cat /sys/class/net/eth0/statistics/rx_bytes")
            let before = Int(runShell(counter).output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            r = runShell(SimulatedCluster.run(3, "", "bench blas --allreduce-only --repeats 3"), timeout: 300)
            let after = Int(runShell(counter).output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(r.status == 0 && r.output.contains("3 ranks across 3 hosts") && r.output.contains("GB/s"), "\(r.output)")
            #expect(before >= 0 && after - before > 3 * 40_000_000, "host 2 received \(after - before) bytes on eth0 during 3 all-reduces of 40 MB")
        }
    }

    /// Runs `command` as 2 ranks on one host (RUN-one-host) and on 2 simulated hosts
    /// (RUN-two-hosts); their newest checkpoints must hold the `parts` and be bitwise equal.
    func expectBitwiseSameOnOneHostAndTwo(_ command: String, run: String, parts: [String],
                                          sourceLocation: SourceLocation = #_sourceLocation) {
        var r = runShell("launch/run -n 2 -- \(command) --run \(Self.dir)/\(run)-one-host", timeout: 600)
        #expect(r.status == 0, "\(r.output)", sourceLocation: sourceLocation)
        r = runShell(SimulatedCluster.run(2, "", "\(command) --run \(Self.dir)/\(run)-two-hosts"), timeout: 600)
        #expect(r.status == 0, "\(r.output)", sourceLocation: sourceLocation)
        let reference = checkpointHashes("\(Self.dir)/\(run)-one-host/checkpoints", sourceLocation: sourceLocation)
        #expect(parts.allSatisfy { reference.contains($0) }, "\(reference)", sourceLocation: sourceLocation)
        #expect(checkpointHashes("\(Self.dir)/\(run)-two-hosts/checkpoints", sourceLocation: sourceLocation) == reference,
                sourceLocation: sourceLocation)
    }

    @Test func ganAndVisCoINTrainersOnTwoHostsEqualTwoRanksOnOneHost() throws {
        try requireData()
        let d = Self.dir, data = Self.prepared.path
        let classifier = runShell(".build/release/viscoin train-classifier --data \(data) --run \(d)/f --arch tiny --lr 2e-3 --epochs 2 "
                                  + "--batch-size 32 --augment flip --log-every 100", timeout: 300)
        try #require(classifier.status == 0, "\(classifier.output)")
        try SimulatedCluster.with(hosts: 2) {
            let gan = "train-gan --data \(data) --cfg tiny --batch 8 --batch-gpu 4 --kimg 0.1 --kimg-per-tick 0.05 --snap 1 --grid-size 4 --metrics none"
            expectBitwiseSameOnOneHostAndTwo(gan, run: "gan", parts: ["G_ema:", "D_opt:"])
            let viscoin = "train-viscoin --classifier \(d)/f/classifier.safetensors --generator \(d)/gan-one-host/G_ema.safetensors --data \(data) "
                + "--concepts 8 --latent-channels 16 --batch-size 8 --augment flip --test-every 1000 --iterations 3 --log-every 1"
            expectBitwiseSameOnOneHostAndTwo(viscoin, run: "viscoin", parts: ["concept_extractor:", "gan_optimizer:"])
        }
    }

    @Test func nodeLocalCheckpointsAndDataResumeOnTheSameHosts() throws {
        try requireData()
        try SimulatedCluster.with(hosts: 3) {
            let local = "\(SimulatedCluster.dir)/node-local"
            for i in 1...3 {
                let r = runShell("cp -r \(Self.prepared.path) \(SimulatedCluster.dir)/hosts/\(SimulatedCluster.host(i))/local/demo")
                try #require(r.status == 0, "\(r.output)")
            }
            let options = "--epochs 2 --checkpoint-dir \(local)/checkpoints --node-local-checkpoints"
            var r = runShell("launch/run -n 3 -- " + training("straight", "--epochs 2"), timeout: 300)
            #expect(r.status == 0, "\(r.output)")
            r = runShell(SimulatedCluster.run(3, "", training("local", options + " --max-steps 25", data: "\(local)/demo")), timeout: 300)
            #expect(r.status == 0, "\(r.output)")
            // Each host's folder: its rank's shard and a copy of the manifest, nothing of the others.
            for i in 1...3 {
                let step = "\(SimulatedCluster.dir)/hosts/\(SimulatedCluster.host(i))/local/checkpoints/step-00000025"
                let files = (try? Files.list(step))?.sorted() ?? []
                #expect(files == ["manifest.json", "shard-0000\(i - 1)-of-00003.zst"], "\(step): \(files)")
            }
            #expect(((try? Files.list(local)) ?? []).isEmpty, "the mount point itself stays empty")
            r = runShell(SimulatedCluster.run(3, "", training("local", options + " --resume latest", data: "\(local)/demo")), timeout: 300)
            #expect(r.status == 0 && r.output.contains("(step 25,"), "\(r.output)")
            #expect(try Files.read("\(Self.dir)/local/classifier.safetensors") == Files.read("\(Self.dir)/straight/classifier.safetensors"))

            // A host whose folder lost its shards: the resume names what is missing.
            try Files.remove("\(SimulatedCluster.dir)/hosts/\(SimulatedCluster.host(3))/local/checkpoints")
            r = runShell(SimulatedCluster.run(3, "", training("local", options + " --resume latest", data: "\(local)/demo")), timeout: 300)
            #expect(r.status != 0 && r.output.contains("shard(s) 2 of 3 are on no host of this job"), "\(r.output)")
            // A folder all hosts see is refused in node-local mode.
            r = runShell(SimulatedCluster.run(3, "", training("shared", "--epochs 1 --node-local-checkpoints")), timeout: 300)
            #expect(r.status != 0 && r.output.contains("this folder is shared between hosts"), "\(r.output)")
        }
    }

    /// Runs a 3-host training with --auto-resume 1 in the background, waits for its first
    /// checkpoint, runs `fault` and records the seconds from the fault to launch/run's report of
    /// the failure. Returns the job's output, its exit status and that detection time.
    func runWithFault(_ run: String, _ fault: String) -> (output: String, status: Int32, detection: Double?) {
        let log = "\(Self.dir)/\(run).log"
        let job = SimulatedCluster.run(3, "--auto-resume 1", training(run, "--epochs 15 --checkpoint-every 10"))
        let script = """
            (\(job) > \(log) 2>&1; echo $? > \(log).status) &
            for i in $(seq 1 600); do [ -e \(Self.dir)/\(run)/checkpoints/latest ] && break; sleep 0.1; done
            date +%s.%N > \(log).fault
            \(fault)
            for i in $(seq 1 1200); do grep -q 'launch/run: the job failed' \(log) 2>/dev/null && break; [ -e \(log).status ] && break; sleep 0.05; done
            date +%s.%N > \(log).detected
            wait
            """
        let r = runShell(script, timeout: 400)
        let output = ((try? Files.readText(log)) ?? "") + r.output
        let status = Int32(((try? Files.readText(log + ".status")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        let faultAt = Double(((try? Files.readText(log + ".fault")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
        let detectedAt = Double(((try? Files.readText(log + ".detected")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
        let failed = output.contains("launch/run: the job failed")
        return (output, status, failed ? faultAt.flatMap { a in detectedAt.map { $0 - a } } : nil)
    }

    @Test func cutLinkEndsTheJobAndAutoResumeFinishesOnTheHostsStillUp() throws {
        try requireData()
        try SimulatedCluster.with(hosts: 3) {
            let r = runWithFault("cut", SimulatedCluster.exec(2, "ip link set eth0 down"))
            #expect(r.status == 0, "\(r.output)")
            let detection = try #require(r.detection, "the cut link was not detected: \(r.output)")
            print("MultiHostTests: a cut link ended the 3-host job after \(Console.fixed(detection, 1)) s")
            #expect(detection < 30, "detected after \(detection) s")
            #expect(r.output.contains("host \(SimulatedCluster.host(2)) does not answer; leaving it out"), "\(r.output)")
            #expect(r.output.contains("restarting on 2 rank(s): \(SimulatedCluster.host(1)) \(SimulatedCluster.host(3))"), "\(r.output)")
            #expect(r.output.contains("written by 3 rank(s), continuing on 2"), "\(r.output)")
            #expect(r.output.contains("report: \(Self.dir)/cut/report.html"), "\(r.output)")
            #expect(leftoverProcesses(2).isEmpty, "left on host 2: \(leftoverProcesses(2))")
            try expectEveryCheckpointVerifies("cut")
        }
    }

    @Test func killedRemoteRankOrDaemonEndsTheJobAndAutoResumeFinishes() throws {
        try requireData()
        for process in ["viscoin", "orted"] {
            try SimulatedCluster.with(hosts: 3) {
                let kill = "for p in $(ip netns pids \(SimulatedCluster.host(2))); do [ \"$(cat /proc/$p/comm)\" = \(process) ] && kill -9 $p; done"
                let r = runWithFault("kill-\(process)", kill)
                #expect(r.status == 0, "\(process): \(r.output)")
                let detection = try #require(r.detection, "the killed \(process) was not detected: \(r.output)")
                print("MultiHostTests: a killed remote \(process) ended the 3-host job after \(Console.fixed(detection, 1)) s")
                #expect(detection < 30, "\(process): detected after \(detection) s")
                #expect(r.output.contains("restarting on 3 rank(s)"), "\(r.output)")
                #expect(r.output.contains("report: \(Self.dir)/kill-\(process)/report.html"), "\(r.output)")
                try expectEveryCheckpointVerifies("kill-\(process)")
            }
        }
    }

    @Test func shortOutageIsSurvived() throws {
        try requireData()
        try SimulatedCluster.with(hosts: 3) {
            let outage = "\(SimulatedCluster.exec(2, "ip link set eth0 down")); sleep 2; \(SimulatedCluster.exec(2, "ip link set eth0 up"))"
            let r = runWithFault("outage", outage)
            #expect(r.status == 0, "\(r.output)")
            #expect(!r.output.contains("launch/run: the job failed"), "\(r.output)")
            #expect(r.output.contains("report: \(Self.dir)/outage/report.html"), "\(r.output)")
        }
    }
}
