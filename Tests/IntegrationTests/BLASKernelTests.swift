// Which OpenBLAS kernels the binary runs (VISCOIN_BLAS_CORE): auto replaces an inherited
// family slower than the CPU supports after the float64 self-check, and keeps the inherited
// one when the check fails; inherit keeps it with a warning; a family the CPU cannot run is
// refused; `env --compare-kernels` measures both.
import Common
import Foundation
import LinearAlgebra
import Testing

@Suite(.serialized) struct BLASKernelTests {
    /// A family below the CPU's best one that the CPU still runs (Sandybridge on AVX2 or
    /// AVX-512 CPUs); nil when the CPU has nothing faster.
    var slower: String? {
        guard let best = BLASKernels.best(), (BLASKernels.level(best) ?? 0) > 1, BLASKernels.supports("Sandybridge") else { return nil }
        return "Sandybridge"
    }

    @Test func autoReplacesASlowerInheritedFamily() throws {
        try requireReleaseBinary()
        guard let slower, let best = BLASKernels.best() else { return }
        var r = runShell("env OPENBLAS_CORETYPE=\(slower) VISCOIN_BLAS_CORE=auto .build/release/viscoin env")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("openblas core type: \(best)"), "\(r.output)")
        #expect(r.output.contains("self-check against float64 passed; instead of OPENBLAS_CORETYPE=\(slower)"), "\(r.output)")
        #expect(!r.output.contains("warning:"), "\(r.output)")
        // Unset means auto.
        r = runShell("env -u VISCOIN_BLAS_CORE OPENBLAS_CORETYPE=\(slower) .build/release/viscoin env")
        #expect(r.output.contains("openblas core type: \(best)"), "\(r.output)")
        // A failed self-check keeps the inherited kernels and says why.
        r = runShell("env OPENBLAS_CORETYPE=\(slower) VISCOIN_BLAS_CORE=auto VISCOIN_BLAS_SELFCHECK_FAIL=1 .build/release/viscoin env")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("openblas core type: \(slower)"), "\(r.output)")
        #expect(r.output.contains("kept OPENBLAS_CORETYPE=\(slower): the \(best) kernels failed the float64 self-check"), "\(r.output)")
        #expect(r.output.contains("warning: OpenBLAS runs its \(slower) kernels"), "\(r.output)")
    }

    @Test func inheritKeepsTheFamilyAndWarnsWithTheMeasuredCost() throws {
        try requireReleaseBinary()
        guard let slower, let best = BLASKernels.best() else { return }
        let r = runShell("env OPENBLAS_CORETYPE=\(slower) VISCOIN_BLAS_CORE=inherit .build/release/viscoin env --compare-kernels --threads 1")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("openblas core type: \(slower)"), "\(r.output)")
        #expect(r.output.contains("warning: OpenBLAS runs its \(slower) kernels (OPENBLAS_CORETYPE=\(slower)) but this CPU supports \(best)"), "\(r.output)")
        #expect(r.output.contains("\(slower): ") && r.output.contains("\(best): ") && r.output.contains("% of \(best)'s"), "\(r.output)")
        // The benchmarks say it too, and record the kernels in every line.
        let bench = runShell("env OPENBLAS_CORETYPE=\(slower) VISCOIN_BLAS_CORE=inherit .build/release/viscoin bench blas --allreduce-only --json --repeats 1")
        #expect(bench.status == 0, "\(bench.output)")
        #expect(bench.output.contains("warning: OpenBLAS runs its \(slower) kernels"), "\(bench.output)")
        #expect(bench.output.contains("\"blas_core\":\"\(slower)\""), "\(bench.output)")
    }

    @Test func namedFamiliesAndBadValues() throws {
        try requireReleaseBinary()
        var r = runShell("env VISCOIN_BLAS_CORE=Haswell OPENBLAS_CORETYPE=Sandybridge .build/release/viscoin env")
        if BLASKernels.supports("Haswell") {
            #expect(r.status == 0 && r.output.contains("openblas core type: Haswell") && r.output.contains("(VISCOIN_BLAS_CORE=Haswell)"), "\(r.output)")
        }
        r = runShell("env VISCOIN_BLAS_CORE=fastest .build/release/viscoin env")
        #expect(r.status == 64 && r.output.contains("error: VISCOIN_BLAS_CORE='fastest': must be auto, inherit or a kernel family"), "\(r.output)")
        if !BLASKernels.supports("SkylakeX") {
            r = runShell("env VISCOIN_BLAS_CORE=SkylakeX .build/release/viscoin env")
            #expect(r.status == 64 && r.output.contains("error: VISCOIN_BLAS_CORE=SkylakeX: this CPU lacks avx512f"), "\(r.output)")
        }
    }

    @Test func theSelfCheckPassesOnTheLoadedKernelsAndCatchesAWrongProduct() {
        #expect(BLASKernels.selfCheck() == nil)
        #expect(BLASKernels.mode(nil) == .auto && BLASKernels.mode("inherit") == .inherit && BLASKernels.mode("skylakex") == .family("SkylakeX"))
        #expect(BLASKernels.mode("avx9") == nil)
        // The plan: auto upgrades only a slower family; inherit never changes anything.
        let avx2: Set<String> = ["avx", "avx2", "fma", "sse3", "ssse3", "sse4_2"]
        #expect(BLASKernels.plan(mode: .auto, current: "Sandybridge", flags: avx2)?.family == "Haswell")
        #expect(BLASKernels.plan(mode: .auto, current: "Zen", flags: avx2) == nil)
        #expect(BLASKernels.plan(mode: .inherit, current: "Prescott", flags: avx2) == nil)
        #expect(BLASKernels.plan(mode: .auto, current: "Haswell", flags: avx2.union(["avx512f", "avx512vl", "avx512bw", "avx512dq"]))?.family == "SkylakeX")
        #expect(BLASKernels.plan(mode: .family("SkylakeX"), current: "Haswell", flags: avx2) == nil)
    }
}

/// `--precision bf16` on oneDNN's own bf16 kernel (the unit tests run under the AVX2 pin,
/// where the OpenBLAS fallback computes): the binary's self-check against float64.
@Suite struct BFloat16KernelTests {
    @Test func bf16SelfCheckOnTheNativeKernel() throws {
        try requireReleaseBinary()
        let r = runShell("env -u ONEDNN_MAX_CPU_ISA .build/release/viscoin env --precision bf16")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("precision: bf16"), "\(r.output)")
        #expect(r.output.contains("bf16 self-check against float64: passed"), "\(r.output)")
        if BLAS.cpuFlags.contains("avx512_bf16") || BLAS.cpuFlags.contains("avx512bw") {
            #expect(r.output.contains("bf16 products: oneDNN bf16 gemm"), "\(r.output)")
        }
        let bad = runShell("env VISCOIN_PRECISION=half .build/release/viscoin env")
        #expect(bad.status != 0 && bad.output.contains("VISCOIN_PRECISION='half': must be float32 or bf16"), "\(bad.output)")
    }
}

/// A training run under `--precision bf16`: it says so, is bitwise reproducible with the same
/// seed, and computes differently from float32 (the products really take bf16 operands), with
/// a finite loss; its checkpoint and report record the precision, and a resume with another
/// precision says that the result will differ. Under the test pin the products run on the
/// OpenBLAS fallback; the native run (oneDNN's bf16 kernel, where the CPU has one) must train
/// as well.
@Suite(.serialized) struct BFloat16TrainingTests {
    static let dir = makeTestFolder("bf16")

    func train(_ run: String, _ flags: String, epochs: Int = 1, env: String = "") -> ProcessResult {
        runShell("env \(env) .build/release/viscoin train-classifier --data \(Self.dir)/demo --run \(Self.dir)/\(run) --arch tiny --epochs \(epochs) --batch-size 9 --eval-batch-size 9 --seed 5 \(flags)", timeout: 300)
    }

    @Test func bf16RunIsReproducibleAndDiffersFromFloat32() throws {
        try requireReleaseBinary()
        let prepared = runShell(".build/release/viscoin prepare demo --out \(Self.dir)/demo --count 90 --size 32", timeout: 300)
        try #require(prepared.status == 0, "\(prepared.output)")
        let first = train("bf16-a", "--precision bf16")
        #expect(first.status == 0, "\(first.output)")
        #expect(first.output.contains("precision: bf16"), "\(first.output)")
        #expect(first.output.contains("test: loss") && !first.output.contains("test: loss nan"), "\(first.output)")
        let again = train("bf16-b", "", env: "VISCOIN_PRECISION=bf16")
        #expect(again.status == 0, "\(again.output)")
        let float32 = train("f32", "")
        #expect(float32.status == 0 && !float32.output.contains("precision: bf16"), "\(float32.output)")
        let hashes = ["bf16-a", "bf16-b", "f32"].map { checkpointHashes("\(Self.dir)/\($0)/checkpoints") }
        #expect(!hashes[0].isEmpty && hashes[0] == hashes[1], "bf16 runs with one seed differ:\n\(hashes[0])\n\(hashes[1])")
        #expect(hashes[0] != hashes[2], "the bf16 run computed exactly what float32 did")
        let native = train("bf16-native", "--precision bf16", env: "-u ONEDNN_MAX_CPU_ISA")
        #expect(native.status == 0 && native.output.contains("precision: bf16"), "\(native.output)")
        #expect(!native.output.contains("loss nan"), "\(native.output)")
        if BLAS.cpuFlags.contains("avx512_bf16") || BLAS.cpuFlags.contains("avx512bw") {
            #expect(native.output.contains("oneDNN bf16 gemm"), "the native run did not use oneDNN's kernel: \(native.output)")
        }
        // The checkpoint and the report record the precision; resuming with another one says so.
        let inspected = runShell(".build/release/viscoin inspect \(Self.dir)/bf16-a/checkpoints")
        #expect(inspected.status == 0 && inspected.output.contains("bf16"), "\(inspected.output)")
        let report = (try? String(contentsOfFile: "\(Self.dir)/bf16-a/report.json", encoding: .utf8)) ?? ""
        #expect(report.contains("\"precision\": \"bf16\""), "\(report)")
        let resumed = train("bf16-a", "--resume latest", epochs: 2)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.output.contains("the checkpoint was computed with --precision bf16, this run continues with --precision float32"), "\(resumed.output)")
        let same = train("bf16-b", "--resume latest --precision bf16", epochs: 2)
        #expect(same.status == 0 && !same.output.contains("resume: note"), "\(same.output)")
    }
}
