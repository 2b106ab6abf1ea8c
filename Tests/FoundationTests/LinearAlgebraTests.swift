import LinearAlgebra
import Testing

@Suite struct BLASTests {
    /// Naive reference: C = alpha op(A) op(B) + beta C with leading dimensions.
    func reference(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: [Float], _ lda: Int,
                   _ b: [Float], _ ldb: Int, _ beta: Float, _ c: [Float], _ ldc: Int) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    let av = ta ? a[p * lda + i] : a[i * lda + p]
                    let bv = tb ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                out[i * ldc + j] = Float(Double(alpha) * s + Double(beta) * Double(c[i * ldc + j]))
            }
        }
        return out
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func sgemmAllTransposeCasesWithLeadingDimensions(_ transposes: (Bool, Bool)) {
        let (ta, tb) = transposes
        let m = 7, n = 5, k = 9
        let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 4
        let a = (0..<((ta ? k : m) * lda)).map { Float(($0 * 37) % 23) / 11 - 1 }
        let b = (0..<((tb ? n : k) * ldb)).map { Float(($0 * 53) % 29) / 13 - 1 }
        let c = (0..<(m * ldc)).map { Float($0 % 7) }
        var out = c
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.75, a: pa.baseAddress!, lda: lda,
                               b: pb.baseAddress!, ldb: ldb, beta: 0.5, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        let expected = reference(ta, tb, m, n, k, 0.75, a, lda, b, ldb, 0.5, c, ldc)
        for i in 0..<out.count { #expect(abs(out[i] - expected[i]) <= 1e-4 * max(1, abs(expected[i]))) }
    }

    @Test func threadCountCanBeSet() {
        let old = BLAS.threadCount
        BLAS.threadCount = 1
        #expect(BLAS.threadCount == 1)
        BLAS.threadCount = old
    }
}

@Suite struct LAPACKTests {
    @Test func symmetricEigenReconstructsTheMatrix() throws {
        let n = 6
        var m = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                let v = sin(Double(i * 7 + j * 3)) + (i == j ? 3 : 0)
                m[i * n + j] = v
                m[j * n + i] = v
            }
        }
        let (values, vectors) = try LAPACK.symmetricEigen(m, n: n)
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n { s += vectors[i * n + k] * values[k] * vectors[j * n + k] }
                #expect(abs(s - m[i * n + j]) < 1e-12)
            }
        }
    }

    @Test func squareRootSquaresBack() throws {
        let n = 5
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { a[i * n + j] = cos(Double(i + 2 * j)) } }
        // S = A A^T is symmetric positive semi-definite.
        var s = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for k in 0..<n { s[i * n + j] += a[i * n + k] * a[j * n + k] } } }
        let r = try LAPACK.symmetricSquareRoot(s, n: n)
        for i in 0..<n {
            for j in 0..<n {
                var v = 0.0
                for k in 0..<n { v += r[i * n + k] * r[k * n + j] }
                #expect(abs(v - s[i * n + j]) < 1e-10 * max(1, abs(s[i * n + j])))
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
