// Which OpenBLAS kernel family runs. OpenBLAS picks it when the library loads, from
// OPENBLAS_CORETYPE or its own CPU detection, so a different choice needs a re-execution before
// anything else runs. VISCOIN_BLAS_CORE says what we do with an inherited OPENBLAS_CORETYPE:
//   auto (default)  the best family this CPU supports when the loaded one is slower (e.g. an
//                   environment pinning Haswell on an AVX-512 CPU), kept only after a float64
//                   self-check of sgemm passes; otherwise the inherited choice, with a note;
//   inherit         exactly what the environment (or OpenBLAS's detection) selects; a warning
//                   when that is slower than the CPU supports (the tests pin Haswell this way);
//   FAMILY          that family (Haswell, SkylakeX, ...), refused when the CPU lacks its
//                   instructions.
import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

public enum BLASKernels {
    /// What VISCOIN_BLAS_CORE asks for.
    public enum Mode: Equatable, Sendable {
        case auto, inherit
        case family(String)
    }

    /// Kernel families with their instruction level (higher is faster for sgemm) and the CPU
    /// flags (/proc/cpuinfo) they need. Families of one level share their sgemm kernels.
    static let families: [(name: String, level: Int, flags: [String])] = [
        ("Prescott", 0, ["sse3"]), ("Core2", 0, ["ssse3"]), ("Nehalem", 0, ["sse4_2"]),
        ("Sandybridge", 1, ["avx"]),
        ("Haswell", 2, ["avx2", "fma"]), ("Zen", 2, ["avx2", "fma"]),
        ("SkylakeX", 3, ["avx512f", "avx512vl", "avx512bw", "avx512dq"]),
        ("Cooperlake", 3, ["avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512_bf16"]),
    ]

    /// Parses VISCOIN_BLAS_CORE; nil for a value that is not understood.
    public static func mode(_ value: String?) -> Mode? {
        guard let value, !value.isEmpty, value != "auto" else { return .auto }
        if value == "inherit" { return .inherit }
        return family(named: value).map { .family($0.name) }
    }

    static func family(named name: String) -> (name: String, level: Int, flags: [String])? {
        families.first { $0.name.lowercased() == name.lowercased() }
    }

    /// Instruction level of a family name; nil for one we do not rank.
    public static func level(_ name: String) -> Int? { family(named: name)?.level }

    /// Whether the CPU has the instructions of `name`.
    public static func supports(_ name: String, flags: Set<String> = BLAS.cpuFlags) -> Bool {
        guard let f = family(named: name) else { return false }
        return f.flags.allSatisfy(flags.contains)
    }

    /// The fastest family the CPU supports (SkylakeX on AVX-512, Haswell on AVX2), if ranked.
    public static func best(flags: Set<String> = BLAS.cpuFlags) -> String? {
        let order = ["SkylakeX", "Haswell", "Sandybridge"]
        return order.first { supports($0, flags: flags) }
    }

    /// How the running kernels were chosen (set before re-executing; shown by `viscoin env`).
    public static var selection: String {
        if let text = getenv("VISCOIN_BLAS_SELECTION") { return String(cString: text) }
        let inherited = getenv("OPENBLAS_CORETYPE").map { "OPENBLAS_CORETYPE=\(String(cString: $0))" } ?? "OpenBLAS's CPU detection"
        return "\(BLAS.coreType) (\(inherited))"
    }

    /// A warning when the loaded family is slower than what the CPU supports; nil otherwise.
    public static var warning: String? {
        let current = BLAS.coreType
        guard let best = best(), let bestLevel = level(best) else { return nil }
        let currentLevel = level(current) ?? 0
        guard currentLevel < bestLevel else { return nil }
        let why = getenv("OPENBLAS_CORETYPE").map { "OPENBLAS_CORETYPE=\(String(cString: $0))" } ?? "OpenBLAS's detection"
        return "OpenBLAS runs its \(current) kernels (\(why)) but this CPU supports \(best); " +
            "unset VISCOIN_BLAS_CORE (auto) or set VISCOIN_BLAS_CORE=\(best) for the faster kernels (`viscoin env --compare-kernels` measures both)"
    }

    /// Throws when VISCOIN_BLAS_CORE is not understood or names a family the CPU cannot run.
    public static func validateEnvironment() throws {
        guard let raw = getenv("VISCOIN_BLAS_CORE") else { return }
        let value = String(cString: raw)
        guard let mode = mode(value) else {
            throw BLASKernelsError(message: "VISCOIN_BLAS_CORE='\(value)': must be auto, inherit or a kernel family (\(families.map(\.name).joined(separator: ", ")))")
        }
        if case .family(let name) = mode, !supports(name) {
            let missing = family(named: name)!.flags.filter { !BLAS.cpuFlags.contains($0) }
            throw BLASKernelsError(message: "VISCOIN_BLAS_CORE=\(name): this CPU lacks \(missing.joined(separator: ", ")) (the best it supports: \(best() ?? "none ranked"))")
        }
    }

    /// The environment changes the selection needs before OpenBLAS loads again; nil when the
    /// loaded family is what `mode` asks for. `verify` is set when the new family must pass
    /// the self-check before it is kept.
    public static func plan(mode: Mode, current: String, flags: Set<String>) -> (family: String, verify: Bool)? {
        switch mode {
        case .inherit:
            return nil
        case .family(let name):
            guard supports(name, flags: flags), name.lowercased() != current.lowercased() else { return nil }
            return (name, false)
        case .auto:
            guard let best = best(flags: flags), let bestLevel = level(best), (level(current) ?? 0) < bestLevel else { return nil }
            return (best, true)
        }
    }

    /// Re-executes the program once when the kernel family has to change (see the header), and
    /// in the re-executed program runs the self-check of a family chosen by `auto`, going back to
    /// the inherited choice when it fails. Returns whether the environment was changed (the
    /// caller re-executes).
    static func prepareEnvironment() -> Bool {
        if let pending = getenv("VISCOIN_BLAS_VERIFY") {
            let candidate = String(cString: pending)
            unsetenv("VISCOIN_BLAS_VERIFY")
            let inherited = getenv("VISCOIN_BLAS_INHERITED").map { String(cString: $0) } ?? ""
            unsetenv("VISCOIN_BLAS_INHERITED")
            let was = inherited.isEmpty ? "OpenBLAS's detection" : "OPENBLAS_CORETYPE=\(inherited)"
            if let failure = selfCheck() {
                if inherited.isEmpty { unsetenv("OPENBLAS_CORETYPE") } else { setenv("OPENBLAS_CORETYPE", inherited, 1) }
                setenv("VISCOIN_BLAS_SELECTION", "kept \(was): the \(candidate) kernels failed the float64 self-check (\(failure))", 1)
                return true
            }
            setenv("VISCOIN_BLAS_SELECTION", "\(candidate) (VISCOIN_BLAS_CORE=auto, self-check against float64 passed; instead of \(was))", 1)
            return false
        }
        if getenv("VISCOIN_BLAS_SELECTION") != nil { return false }  // decided by the parent process
        guard let mode = mode(getenv("VISCOIN_BLAS_CORE").map { String(cString: $0) }),
              let change = plan(mode: mode, current: BLAS.coreType, flags: BLAS.cpuFlags) else { return false }
        if change.verify {
            setenv("VISCOIN_BLAS_VERIFY", change.family, 1)
            setenv("VISCOIN_BLAS_INHERITED", getenv("OPENBLAS_CORETYPE").map { String(cString: $0) } ?? "", 1)
        } else {
            setenv("VISCOIN_BLAS_SELECTION", "\(change.family) (VISCOIN_BLAS_CORE=\(change.family))", 1)
        }
        setenv("OPENBLAS_CORETYPE", change.family, 1)
        return true
    }

    /// sgemm of the loaded kernels against a float64 product on a few odd shapes, every transpose
    /// case, alpha and beta: nil when every element is within 4 k eps sum_k |a b| (+ |beta c|) of
    /// the reference, else a description of the worst element. VISCOIN_BLAS_SELFCHECK_FAIL=1
    /// makes it fail (for the tests of the fallback).
    /// With `precision` bf16 it checks the bf16 products against the float64 product of the
    /// bf16-rounded operands (exact products, float32 accumulation: the same bound).
    public static func selfCheck(precision: Precision = .float32) -> String? {
        BLAS.$precisionOverride.withValue(precision) { check(precision) }
    }

    private static func check(_ precision: Precision) -> String? {
        if getenv("VISCOIN_BLAS_SELFCHECK_FAIL").map({ String(cString: $0) }) == "1" { return "forced by VISCOIN_BLAS_SELFCHECK_FAIL=1" }
        let operand: (Float) -> Double = precision == .bf16 ? { Double(BFloat16Rounding.rounded($0)) } : { Double($0) }
        let shapes = [(67, 45, 131), (130, 96, 300), (5, 257, 33), (1, 64, 512), (300, 17, 9), (96, 96, 96)]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        let alpha: Float = 1.25, beta: Float = 0.5
        for (m, n, k) in shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = (0..<(m * k)).map { _ in next() }, b = (0..<(k * n)).map { _ in next() }
                let c0 = (0..<(m * n)).map { _ in next() }
                var c = c0
                let lda = ta ? m : k, ldb = tb ? k : n
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            BLAS.sgemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                                       b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: n)
                        }
                    }
                }
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0, magnitude = 0.0
                        for p in 0..<k {
                            let x = operand(ta ? a[p * lda + i] : a[i * lda + p]), y = operand(tb ? b[j * ldb + p] : b[p * ldb + j])
                            sum += x * y
                            magnitude += abs(x * y)
                        }
                        let reference = Double(alpha) * sum + Double(beta) * Double(c0[i * n + j])
                        let bound = 4 * Double(k + 2) * Double(Float.ulpOfOne) * (Double(alpha) * magnitude + Double(beta) * abs(Double(c0[i * n + j]))) + 1e-30
                        let error = abs(Double(c[i * n + j]) - reference)
                        if !(error <= bound) {
                            return "\(precision == .bf16 ? "bf16 gemm" : "sgemm") \(m)x\(n)x\(k)\(ta ? " A^T" : "")\(tb ? " B^T" : ""): element (\(i), \(j)) is \(c[i * n + j]), float64 says \(reference)"
                        }
                    }
                }
            }
        }
        return nil
    }

    /// sgemm GFLOP/s of the loaded kernels on one n^3 product (best of `repeats`), with the
    /// current OpenBLAS threads.
    public static func sgemmGFLOPs(n: Int = 1024, repeats: Int = 3) -> Double {
        SgemmPeakProbe(n: n).measure(runs: repeats + 1)
    }
}

/// The sgemm peak of this process: an n^3 product on fixed buffers (kept, so the benchmarks
/// can measure it between steps without allocating).
public final class SgemmPeakProbe {
    public let n: Int
    private let a: [Float], b: [Float]
    private var c: [Float]

    public init(n: Int = 1024) {
        self.n = n
        a = (0..<(n * n)).map { Float($0 % 17) * 0.01 }
        b = (0..<(n * n)).map { Float($0 % 13) * 0.01 }
        c = [Float](repeating: 0, count: n * n)
    }

    /// GFLOP/s of the fastest of `runs` products, with the process's BLAS threads.
    public func measure(runs: Int = 3) -> Double {
        var best = Double.infinity
        let n = self.n
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    for _ in 0..<max(1, runs) {
                        var t0 = timespec(), t1 = timespec()
                        clock_gettime(CLOCK_MONOTONIC, &t0)
                        BLAS.sgemm(m: n, n: n, k: n, a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
                        clock_gettime(CLOCK_MONOTONIC, &t1)
                        best = min(best, Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9)
                    }
                }
            }
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }
}

public struct BLASKernelsError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
