// Which kernels run a convolution's forward pass and input gradient: our im2col path (the
// reference the tests compare against), or oneDNN's direct (jit) convolutions through the
// CConvShim (1.1-2.2x im2col + sgemm on the AVX2 3x3 and 7x7 layers, reorders to its blocked
// layout included; StyleGAN2 steps 12-17% faster). VISCOIN_CONV=onednn|im2col forces one for
// every convolution; unset (or auto), each network picks: StyleGAN2's synthesis network and
// discriminator run on oneDNN, every other network (ResNet, Psi, LPIPS, Inception) on im2col.
// Why not oneDNN everywhere: its results differ from im2col's in the last bits, and two golden
// cases of the ResNet (the narrow ResNet's eval-mode input gradient, the full ResNet-50 with
// oneDNN's sgemm) sit on a ReLU/max-pool kink where a one-ulp change of the input already moves
// the reference gradient out of tolerance (ResNetTests.narrowEvalInputGradientSitsOnAKink); every
// StyleGAN2 golden, finite-difference and second-order case passes on oneDNN. The backend is
// fixed when a convolution's forward pass runs (ConvGeometry.backend), so its gradients of every
// order, computed later, run on the same kernels. Stride-1 1x1 convolutions and every weight
// gradient stay on sgemm, where oneDNN was measured slower (the reorders of large maps cost more
// than its kernels gain); geometries oneDNN has no direct kernel for fall back to im2col.
// With --precision bf16 and nothing forced, every network runs on im2col (bf16 products).
import CConvShim
import Common
import LinearAlgebra

public enum ConvBackend: String, Sendable, CaseIterable {
    case onednn, im2col

    /// VISCOIN_CONV: one backend for every convolution, or nil (unset or auto: each network's
    /// choice); an unknown value is refused at start.
    public static var fromEnvironment: ConvBackend? {
        environment("VISCOIN_CONV").flatMap { ConvBackend(rawValue: $0) }
    }

    /// The backend forced for this process, if any.
    public static let configured: ConvBackend? = .fromEnvironment

    /// What `viscoin env` and the benchmarks report.
    public static var setting: String {
        if let forced = override ?? configured { return forced.rawValue }
        if BLAS.precision == .bf16 { return "auto (im2col with bf16 products everywhere, for --precision bf16)" }
        return "auto (onednn in StyleGAN2's synthesis network and discriminator, im2col elsewhere)"
    }

    /// A backend for the work of one task, over VISCOIN_CONV (the tests run both side by side):
    /// `ConvBackend.$override.withValue(.im2col) { ... }`.
    @TaskLocal public static var override: ConvBackend?

    /// The network's own choice, used when nothing is forced (`network(_:_:)`).
    @TaskLocal static var networkChoice: ConvBackend = .im2col

    /// The backend a convolution started here runs on.
    /// With the bf16 precision, nothing forced, every convolution runs on im2col, where its
    /// products are bf16 (the oneDNN convolutions here are float32).
    public static var current: ConvBackend {
        override ?? configured ?? (BLAS.precision == .bf16 ? .im2col : networkChoice)
    }

    /// Runs `body` (a network's forward pass) with `backend` as the network's choice; an
    /// override or VISCOIN_CONV still wins.
    public static func network<T>(_ backend: ConvBackend, _ body: () throws -> T) rethrows -> T {
        try $networkChoice.withValue(backend, operation: body)
    }

    /// oneDNN's implementation for the last forward and backward-data call ("none" before).
    public static var lastImplementations: (forward: String, backwardData: String) {
        (String(cString: vconv_last_implementation(Int32(VCONV_FORWARD))), String(cString: vconv_last_implementation(Int32(VCONV_BACKWARD_DATA))))
    }

    /// Runs `kind` on oneDNN when it is the backend; false when the caller must run im2col.
    static func run(_ kind: Int32, _ g: ConvGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) -> Bool {
        guard g.backend == .onednn, !g.isPointwise else { return false }
        var geometry = vconv_geometry(n: Int32(g.n), c: Int32(g.c), h: Int32(g.h), w: Int32(g.w), o: Int32(g.o), kh: Int32(g.kh), kw: Int32(g.kw),
                                      sh: Int32(g.strideH), sw: Int32(g.strideW), ph: Int32(g.padH), pw: Int32(g.padW), groups: Int32(g.groups),
                                      oh: Int32(g.oh), ow: Int32(g.ow))
        guard vconv_run(kind, &geometry, input, weight, output) == 0 else { return false }
        BLAS.flopCounter.wrappingAdd(2 * UInt64(g.macs), ordering: .relaxed)
        return true
    }
}
