// cluster/slurm.sbatch under a real SLURM on this machine (cluster/local-slurm: munge,
// slurmctld, slurmd): srun starts 2 tasks that Open MPI joins into one world of 2 through PMIx,
// the job writes what the same mpirun job writes, and SLURM's pre-emption signal makes every
// rank write a checkpoint and stop, from which the job continues to the same result. Skipped,
// with the reason printed, without root or without the slurm-wlm and munge packages.
import Common
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum LocalSLURM {
    static let available: Bool = {
        guard getuid() == 0 else {
            print("SlurmTests: skipped: starting SLURM needs root (cluster/local-slurm up)")
            return false
        }
        guard runShell("command -v sbatch && command -v slurmctld && command -v munged").status == 0 else {
            print("SlurmTests: skipped: SLURM is not installed (apt-get install -y slurm-wlm munge; .ci/run does)")
            return false
        }
        let r = runShell("cluster/local-slurm up", timeout: 90)
        if r.status != 0 { print("SlurmTests: skipped: cluster/local-slurm up failed: \(r.output)") }
        return r.status == 0
    }()

    /// The job's state, exit code and restarts from `scontrol show job`.
    static func job(_ id: String) -> (state: String, exitCode: String, restarts: Int) {
        let text = runShell("scontrol show job \(id)").output
        func field(_ name: String) -> String {
            guard let range = text.range(of: name + "=") else { return "" }
            return String(text[range.upperBound...].prefix { !$0.isWhitespace })
        }
        return (field("JobState"), field("ExitCode"), Int(field("Restarts")) ?? 0)
    }
}

@Suite(.serialized, .enabled("needs root and SLURM (slurm-wlm, munge)") { LocalSLURM.available })
struct SlurmTests {
    static let dir = makeTestFolder("slurm")
    static let prepared: (path: String, result: ProcessResult) = {
        let path = dir + "/demo"
        return (path, runShell(".build/release/viscoin prepare demo --out \(path) --count 900 --size 32 --seed 1"))
    }()

    func training(_ run: String, _ extra: String) -> String {
        "train-classifier --data \(Self.prepared.path) --run \(Self.dir)/\(run) --arch tiny --batch-size 36 --eval-batch-size 36 "
            + "--lr 2e-3 --log-every 20 --augment train \(extra)"
    }

    /// sbatch options of a 2-task job on the one node, with the log in the test folder.
    func sbatch(_ name: String) -> String {
        "sbatch --nodes=1 --ntasks=2 --cpus-per-task=1 --time=10 --output=\(Self.dir)/\(name).log"
    }

    func requireData() throws {
        try requireReleaseBinary()
        try #require(Self.prepared.result.status == 0, "prepare demo failed: \(Self.prepared.result.output)")
    }

    func hashes(_ run: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        checkpointHashes("\(Self.dir)/\(run)/checkpoints", sourceLocation: sourceLocation)
    }

    @Test func sbatchStartsOneWorldOfTwoThroughSrunAndMatchesMpirun() throws {
        try requireData()
        var r = runShell("\(sbatch("env")) --wait cluster/slurm.sbatch env", timeout: 300)
        let env = (try? Files.readText("\(Self.dir)/env.log")) ?? ""
        #expect(r.status == 0, "\(r.output)\n\(env)")
        #expect(env.contains("world size 2") && env.contains("rank 0/2") && env.contains("rank 1/2"), "\(env)")
        #expect(env.contains("threads 1 blas-threads 1"), "threads per rank come from --cpus-per-task: \(env)")

        r = runShell("\(sbatch("train")) --wait cluster/slurm.sbatch " + training("slurm", "--epochs 2"), timeout: 300)
        let log = (try? Files.readText("\(Self.dir)/train.log")) ?? ""
        #expect(r.status == 0, "\(r.output)\n\(log)")
        #expect(log.contains("2 rank(s) x 18 images"), "\(log)")
        r = runShell("launch/run -n 2 -- " + training("mpirun", "--epochs 2"), timeout: 300)
        #expect(r.status == 0, "\(r.output)")
        let reference = hashes("mpirun")
        #expect(reference.contains("model:"), "\(reference)")
        #expect(hashes("slurm") == reference)
        #expect(try Files.read("\(Self.dir)/slurm/classifier.safetensors") == Files.read("\(Self.dir)/mpirun/classifier.safetensors"))
    }

    @Test func preemptionSignalWritesACheckpointAndTheJobContinuesToTheSameResult() throws {
        try requireData()
        // Started with --resume latest, as the template recommends for requeued jobs.
        let command = training("preempted", "--epochs 10 --resume latest")
        let submitted = runShell("VISCOIN_REQUEUE=0 \(sbatch("preempted")) --parsable cluster/slurm.sbatch \(command)")
        let id = submitted.output.split(separator: "\n").last.map { String($0.split(separator: ";")[0]) } ?? ""
        try #require(submitted.status == 0 && !id.isEmpty, "\(submitted.output)")
        let waited = runShell("for i in $(seq 1 600); do [ -e \(Self.dir)/preempted/checkpoints/latest ] && exit 0; sleep 0.1; done; exit 1", timeout: 90)
        #expect(waited.status == 0, "the job wrote no checkpoint")
        // What SLURM sends before a time limit or a pre-emption (--signal=USR1@T).
        #expect(runShell("scancel --signal=USR1 \(id)").status == 0)
        var job = LocalSLURM.job(id)
        for _ in 0..<600 where ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", ""].contains(job.state) {
            usleep(100_000)
            job = LocalSLURM.job(id)
        }
        let log = (try? Files.readText("\(Self.dir)/preempted.log")) ?? ""
        #expect(job.exitCode == "75:0", "job \(id): \(job)\n\(log)")
        let stop = try #require(log.split(separator: "\n").first { $0.hasPrefix("stopped by SIGUSR1 after step ") }, "\(log)")
        let step = Int(stop.dropFirst("stopped by SIGUSR1 after step ".count).prefix { $0.isNumber }) ?? -1
        let checkpoint = "\(Self.dir)/preempted/checkpoints/\(String(format: "step-%08d", step))"
        let inspected = runShell(".build/release/viscoin inspect \(checkpoint)")
        #expect(inspected.status == 0, "the pre-emption checkpoint does not verify: \(inspected.output)")
        #expect(!Files.exists("\(Self.dir)/preempted/report.html"), "a pre-empted job stops without finishing")

        // The requeued job (same command) continues from that checkpoint to the same result as
        // one uninterrupted run.
        let r = runShell("\(sbatch("preempted")) --wait cluster/slurm.sbatch \(command)", timeout: 300)
        let all = (try? Files.readText("\(Self.dir)/preempted.log")) ?? ""
        #expect(r.status == 0 && all.contains("resume: \(checkpoint) (step \(step),"), "\(r.output)\n\(all)")
        let straight = runShell("launch/run -n 2 -- " + training("uninterrupted", "--epochs 10"), timeout: 300)
        #expect(straight.status == 0, "\(straight.output)")
        #expect(hashes("preempted") == hashes("uninterrupted"))
        #expect(try Files.read("\(Self.dir)/preempted/classifier.safetensors") == Files.read("\(Self.dir)/uninterrupted/classifier.safetensors"))
    }
}
