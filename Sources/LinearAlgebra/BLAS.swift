// A thin Swift layer over the matrix-product libraries: single-precision GEMM with every
// transpose case and explicit leading dimensions, on OpenBLAS (default) or oneDNN's sgemm
// (VISCOIN_GEMM=onednn, opt-in: about 5% faster ResNet-50 steps on AVX2, but its different
// summation order moved one full ResNet-50 golden case outside its tolerance); the thread-count
// setting of both; what OpenBLAS reports about itself. LAPACK and dgemm stay on OpenBLAS.
// With the bf16 precision (--precision bf16, VISCOIN_PRECISION=bf16) every sgemm rounds its
// operands to bfloat16 and accumulates in float32 (CBFloat16, on oneDNN's bf16 GEMM).
import CBFloat16
import COneDNN
import COpenBLAS
import Synchronization

/// The library behind `BLAS.sgemm`.
public enum GEMMLibrary: String, Sendable, CaseIterable {
    case onednn, openblas

    /// VISCOIN_GEMM (openblas or onednn; default openblas). An unknown value is refused at start.
    public static var fromEnvironment: GEMMLibrary {
        getenv("VISCOIN_GEMM").flatMap { GEMMLibrary(rawValue: String(cString: $0)) } ?? .openblas
    }
}

/// The arithmetic of `BLAS.sgemm` (and so of every matrix product and im2col convolution).
public enum Precision: String, Sendable, CaseIterable {
    /// float32 operands and accumulation: the default, exact to the reference's tolerances.
    case float32
    /// Operands rounded to bfloat16 (nearest even), products accumulated in float32, float32
    /// results; master weights, optimizer state and every other op stay float32 (as PyTorch's
    /// CPU autocast for convolutions and matrix products, with float32 outputs).
    case bf16

    /// VISCOIN_PRECISION (float32 or bf16; default float32). An unknown value is refused at start.
    public static var fromEnvironment: Precision {
        getenv("VISCOIN_PRECISION").flatMap { Precision(rawValue: String(cString: $0)) } ?? .float32
    }
}

public enum BLAS {
    /// The library chosen for this process.
    public static let configuredGEMM: GEMMLibrary = .fromEnvironment

    /// A library for the work of one task (the tests compare both):
    /// `BLAS.$gemmOverride.withValue(.openblas) { ... }`.
    @TaskLocal public static var gemmOverride: GEMMLibrary?

    /// The library `sgemm` calls here.
    public static var gemm: GEMMLibrary { gemmOverride ?? configuredGEMM }

    private static let precisionSetting = Atomic<Bool>(Precision.fromEnvironment == .bf16)

    /// The precision of this process (VISCOIN_PRECISION, or `--precision`, set before any work).
    public static var configuredPrecision: Precision {
        get { precisionSetting.load(ordering: .relaxed) ? .bf16 : .float32 }
        set { precisionSetting.store(newValue == .bf16, ordering: .relaxed) }
    }

    /// A precision for the work of one task (the tests compare both):
    /// `BLAS.$precisionOverride.withValue(.bf16) { ... }`.
    @TaskLocal public static var precisionOverride: Precision?

    /// The precision `sgemm` computes in here.
    public static var precision: Precision { precisionOverride ?? configuredPrecision }

    /// The bf16 kernel: oneDNN's bf16 GEMM where it runs on this CPU, else OpenBLAS on the
    /// bf16-rounded operands (the same arithmetic, without the speed).
    public static var bf16Kernel: String { String(cString: vbf16_kernel()) }

    /// Whether the bf16 products run on oneDNN's bf16 kernels.
    public static var hasNativeBF16: Bool { vbf16_native() != 0 }

    /// Floating-point operations (2 per multiply-add) of every sgemm and oneDNN convolution so
    /// far, for the benchmarks' GFLOP/s and fraction of the sgemm peak.
    public static let flopCounter = Atomic<UInt64>(0)

    public static var countedFLOPs: Double { Double(flopCounter.load(ordering: .relaxed)) }

    /// The sgemm library and its kernels, for benchmark lines and `viscoin env`.
    public static var gemmDescription: String {
        if precision == .bf16 { return bf16Kernel }
        switch gemm {
        case .onednn:
            let v = dnnl_version()!.pointee
            return "oneDNN \(v.major).\(v.minor).\(v.patch) sgemm"
        case .openblas: return "OpenBLAS sgemm (\(coreType))"
        }
    }

    /// `C = alpha * op(A) * op(B) + beta * C`, row-major. `op(A)` is `m x k`, `op(B)` is `k x n`,
    /// `C` is `m x n`. `lda`, `ldb`, `ldc` are the row strides of the stored (untransposed) matrices.
    @inline(__always)
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative dimension")
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS semantics: C = beta * C.
            for i in 0..<m {
                let row = c + i * ldc
                if beta == 0 { row.update(repeating: 0, count: n) } else { for j in 0..<n { row[j] *= beta } }
            }
            return
        }
        flopCounter.wrappingAdd(2 * UInt64(m) * UInt64(n) * UInt64(k), ordering: .relaxed)
        if precision == .bf16 {
            // The OpenBLAS fallback takes int sizes, as the float32 path does (Int32 traps too).
            let limit = Int(Int32.max)
            precondition(m <= limit && n <= limit && k <= limit && lda <= limit && ldb <= limit && ldc <= limit, "bf16 gemm \(m)x\(n)x\(k): a size exceeds Int32")
            let status = vbf16_gemm(transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            precondition(status == 0, "bf16 gemm \(m)x\(n)x\(k): cannot allocate its operand buffers")
            return
        }
        switch gemm {
        case .onednn:
            // Row-major like ours. It only fails for invalid arguments, which the checks above
            // and the callers' shapes exclude.
            let status = dnnl_sgemm(CChar(transposeA ? 84 : 78), CChar(transposeB ? 84 : 78), Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda),
                                    b, Int64(ldb), beta, c, Int64(ldc))
            precondition(status == dnnl_success, "dnnl_sgemm failed (\(status)) for \(m)x\(n)x\(k)")
        case .openblas:
            cblas_sgemm(
                CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }

    /// Convenience overload with contiguous leading dimensions.
    public static func sgemm(
        transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        beta: Float = 0, c: UnsafeMutablePointer<Float>
    ) {
        sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
              a: a, lda: transposeA ? m : k, b: b, ldb: transposeB ? k : n, beta: beta, c: c, ldc: n)
    }

    /// `C = alpha * op(A) * op(B) + beta * C` in double precision (FID statistics).
    public static func dgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        cblas_dgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Number of threads OpenBLAS uses for one call. Under mpirun with one core per rank,
    /// OpenBLAS is limited by the binding whatever this says.
    /// oneDNN's OpenMP threads follow the same count (set from the thread that calls sgemm).
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            openblas_set_num_threads(Int32(max(1, newValue)))
            omp_set_num_threads(Int32(max(1, newValue)))
        }
    }

    /// The kernel family OpenBLAS selected for this CPU (e.g. "Cooperlake").
    public static var coreType: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// OpenBLAS build configuration string (version, threading, max threads).
    public static var configuration: String {
        guard let text = openblas_get_config() else { return "unknown" }
        return String(cString: text)
    }

    /// Number of processors OpenBLAS sees.
    public static var processorCount: Int { Int(openblas_get_num_procs()) }
}

#if canImport(Glibc)
import Glibc
#endif

extension BLAS {
    /// OpenBLAS reads two settings when the library loads, so they must be in the environment
    /// before the process starts; this re-executes the program once with them when missing:
    /// - OPENBLAS_CORETYPE, as VISCOIN_BLAS_CORE asks (see BLASKernels): by default the best
    ///   kernel family the CPU supports when the loaded one is slower, after a float64 self-check.
    ///   (OpenBLAS 0.3.21 also does not recognise recent Xeons, e.g. family 6 model 207, and
    ///   falls back to its generic "Prescott" kernels, 2-3x slower.)
    /// - OPENBLAS_THREAD_TIMEOUT=4: idle OpenBLAS worker threads sleep almost at once instead of
    ///   spinning in sched_yield for ~0.1 s, which stole the second core from our own kernels
    ///   between GEMMs (measured: ResNet-50 training step 2.9 -> 3.5 images/s).
    /// - OMP_WAIT_POLICY=PASSIVE, the same for oneDNN's OpenMP threads.
    /// Call it first in main. Set VISCOIN_NO_REEXEC=1 to disable.
    public static func reexecWithTunedSettingsIfNeeded() {
        let verifying = getenv("VISCOIN_BLAS_VERIFY") != nil
        guard getenv("VISCOIN_NO_REEXEC") == nil || verifying else { return }
        var changed = BLASKernels.prepareEnvironment()
        if getenv("OPENBLAS_THREAD_TIMEOUT") == nil {
            setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
            changed = true
        }
        // oneDNN's OpenMP threads likewise sleep between calls instead of spinning (measured:
        // ResNet-50 inference 7.2 -> 10.0 images/s with oneDNN's sgemm).
        if getenv("OMP_WAIT_POLICY") == nil {
            setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
            changed = true
        }
        guard changed else { return }
        setenv("VISCOIN_NO_REEXEC", "1", 1)  // never loop
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv only returns on failure: carry on with the current settings.
    }

    /// CPU feature flags from /proc/cpuinfo (read once).
    public static let cpuFlags: Set<String> = readCPUFlags()

    private static func readCPUFlags() -> Set<String> {
        guard let file = fopen("/proc/cpuinfo", "r") else { return [] }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            let text = String(cString: line!)
            if text.hasPrefix("flags") {
                return Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == ":" }).map(String.init))
            }
        }
        return []
    }
}
