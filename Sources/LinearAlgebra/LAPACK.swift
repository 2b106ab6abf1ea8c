// LAPACK through the Fortran symbols inside libopenblas (no LAPACKE): symmetric
// eigendecomposition in Float64 (`dsyevd_`) and the symmetric matrix square root built on it
// (used by the Frechet distance of FID).
import COpenBLAS

public struct LAPACKError: Error, CustomStringConvertible, Sendable {
    public let routine: String
    public let info: Int
    public var description: String {
        info < 0 ? "\(routine): argument \(-info) had an illegal value"
                 : "\(routine): the algorithm failed to converge (info \(info))"
    }
}

public enum LAPACK {
    /// Eigen-decomposition of a symmetric `n x n` matrix (row-major; only symmetry is assumed).
    /// Returns eigenvalues in ascending order and the eigenvectors as the columns of a row-major
    /// matrix: `vectors[i * n + j]` is component `i` of eigenvector `j`.
    public static func symmetricEigen(_ matrix: [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
        precondition(matrix.count == n * n, "symmetricEigen: expected \(n * n) values, got \(matrix.count)")
        if n == 0 { return ([], []) }
        // Column-major Fortran storage of a symmetric matrix equals its row-major storage.
        var a = matrix
        var w = [Double](repeating: 0, count: n)
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        var lwork: Int32 = -1, liwork: Int32 = -1
        var workQuery = [Double](repeating: 0, count: 1)
        var iworkQuery = [Int32](repeating: 0, count: 1)
        let jobz: [CChar] = [CChar(UInt8(ascii: "V")), 0]
        let uplo: [CChar] = [CChar(UInt8(ascii: "U")), 0]
        dsyevd_(jobz, uplo, &nn, &a, &lda, &w, &workQuery, &lwork, &iworkQuery, &liwork, &info, 1, 1)
        guard info == 0 else { throw LAPACKError(routine: "dsyevd", info: Int(info)) }
        lwork = Int32(workQuery[0])
        liwork = iworkQuery[0]
        var work = [Double](repeating: 0, count: Int(lwork))
        var iwork = [Int32](repeating: 0, count: Int(liwork))
        dsyevd_(jobz, uplo, &nn, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info, 1, 1)
        guard info == 0 else { throw LAPACKError(routine: "dsyevd", info: Int(info)) }
        // `a` now holds eigenvectors as columns in column-major order: a[j * n + i] = v_j[i].
        var vectors = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            for i in 0..<n { vectors[i * n + j] = a[j * n + i] }
        }
        return (w, vectors)
    }

    /// Square root of a symmetric positive semi-definite matrix: `V diag(sqrt(max(l, 0))) V^T`.
    public static func symmetricSquareRoot(_ matrix: [Double], n: Int) throws -> [Double] {
        let (values, vectors) = try symmetricEigen(matrix, n: n)
        var scaled = vectors  // columns scaled by sqrt(lambda)
        for j in 0..<n {
            let s = values[j] > 0 ? values[j].squareRoot() : 0
            for i in 0..<n { scaled[i * n + j] *= s }
        }
        var result = [Double](repeating: 0, count: n * n)
        scaled.withUnsafeBufferPointer { s in
            vectors.withUnsafeBufferPointer { v in
                result.withUnsafeMutableBufferPointer { r in
                    BLAS.dgemm(transposeA: false, transposeB: true, m: n, n: n, k: n,
                               a: s.baseAddress!, lda: n, b: v.baseAddress!, ldb: n,
                               c: r.baseAddress!, ldc: n)
                }
            }
        }
        return result
    }
}
