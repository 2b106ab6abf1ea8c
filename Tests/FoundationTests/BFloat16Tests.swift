// The bf16 precision of BLAS.sgemm: round-to-nearest-even conversion, and every transpose case
// with leading dimensions, alpha and beta against a float64 product of the bf16-rounded
// operands (the products of bf16 values are exact in float32, so only the float32 accumulation
// differs). Under the tests' oneDNN ISA pin this runs the OpenBLAS fallback; the integration
// test `BLASKernelTests.bf16SelfCheckOnTheNativeKernel` runs the same check on oneDNN's kernel.
import LinearAlgebra
import Testing

@Suite struct BFloat16Tests {
    @Test func roundsToNearestEven() {
        #expect(BFloat16Rounding.bits(1) == 0x3F80)
        #expect(BFloat16Rounding.bits(-2) == 0xC000)
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
        #expect(BFloat16Rounding.rounded(1 + 0x1p-8) == 1)
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to the even one, 1 + 2^-6.
        #expect(BFloat16Rounding.rounded(1 + 3 * 0x1p-8) == 1 + 0x1p-6)
        // Just above halfway rounds up.
        #expect(BFloat16Rounding.rounded(1 + 0x1p-8 + 0x1p-20) == 1 + 0x1p-7)
        #expect(BFloat16Rounding.rounded(.infinity) == .infinity)
        #expect(BFloat16Rounding.rounded(-.infinity) == -.infinity)
        #expect(BFloat16Rounding.rounded(.nan).isNaN)
        #expect(BFloat16Rounding.rounded(-0.0).sign == .minus)
        // The largest float rounds to infinity (beyond bf16's largest finite value + half ulp).
        #expect(BFloat16Rounding.rounded(.greatestFiniteMagnitude) == .infinity)
        // Relative error of at most 2^-9.
        for x: Float in [0.1, 3.14159, -123.456, 1e-30, 6.5e4] {
            #expect(abs(BFloat16Rounding.rounded(x) - x) <= abs(x) * 0x1p-9)
        }
    }

    @Test func vectorRoundingMatchesScalar() {
        var values: [Float] = (0..<1000).map { Float($0) * 0.0137 - 5 } + [.nan, .infinity, 0x1p-130, -0.0]
        let expected = values.map(BFloat16Rounding.rounded)
        values.withUnsafeMutableBufferPointer { BFloat16Rounding.round($0) }
        for (v, e) in zip(values, expected) { #expect(v.bitPattern == e.bitPattern || (v.isNaN && e.isNaN)) }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func bf16GemmMatchesFloat64OfRoundedOperands(_ transposes: (Bool, Bool)) {
        let (ta, tb) = transposes
        for (m, n, k) in [(7, 5, 9), (33, 17, 130), (1, 64, 300)] {
            let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 4
            let a = (0..<((ta ? k : m) * lda)).map { Float(($0 * 37) % 23) / 11.3 - 1 }
            let b = (0..<((tb ? n : k) * ldb)).map { Float(($0 * 53) % 29) / 13.7 - 1 }
            let c = (0..<(m * ldc)).map { Float($0 % 7) * 0.3 }
            let alpha: Float = 0.75, beta: Float = 0.5
            var out = c
            var float32 = c
            BLAS.$precisionOverride.withValue(.bf16) { gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, &out, ldc) }
            BLAS.$precisionOverride.withValue(.float32) { gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, &float32, ldc) }
            var differsFromFloat32 = false
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0, magnitude = 0.0
                    for p in 0..<k {
                        let x = Double(BFloat16Rounding.rounded(ta ? a[p * lda + i] : a[i * lda + p]))
                        let y = Double(BFloat16Rounding.rounded(tb ? b[j * ldb + p] : b[p * ldb + j]))
                        sum += x * y
                        magnitude += abs(x * y)
                    }
                    let reference = Double(alpha) * sum + Double(beta) * Double(c[i * ldc + j])
                    let bound = 4 * Double(k + 2) * Double(Float.ulpOfOne) * (Double(alpha) * magnitude + Double(beta) * abs(Double(c[i * ldc + j])))
                    #expect(abs(Double(out[i * ldc + j]) - reference) <= bound, "\(m)x\(n)x\(k) (\(i), \(j))")
                    if out[i * ldc + j] != float32[i * ldc + j] { differsFromFloat32 = true }
                }
                // Columns beyond n in C are untouched.
                for j in n..<ldc { #expect(out[i * ldc + j] == c[i * ldc + j]) }
            }
            // The operands are not bf16 values, so the bf16 products are not the float32 ones.
            #expect(differsFromFloat32, "\(m)x\(n)x\(k): bf16 gave the float32 result")
        }
    }

    @Test func precisionSettingAndSelfCheck() {
        #expect(BLAS.precision == .float32)  // the default
        BLAS.$precisionOverride.withValue(.bf16) {
            #expect(BLAS.precision == .bf16)
            #expect(BLAS.gemmDescription.contains("bf16"))
        }
        #expect(BLASKernels.selfCheck(precision: .bf16) == nil)
        #expect(BLASKernels.selfCheck() == nil)
        #expect(Precision(rawValue: "bf16") == .bf16 && Precision(rawValue: "fp16") == nil)
    }

    func gemm(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: [Float], _ lda: Int,
              _ b: [Float], _ ldb: Int, _ beta: Float, _ c: inout [Float], _ ldc: Int) {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                               b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
    }
}
