// Feature statistics for FID and KID as stylegan2-ada computes them (spec metrics.md 2-3):
// float32 features accumulated in Float64 (sum and sum of outer products), merged across
// ranks with an all-reduce; mean = S1 / n, covariance = S2 / n - mean mean^T (divisor n).
import Communication
import LinearAlgebra
import TensorCore

public struct FIDError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

public final class FeatureStatistics {
    public let dimension: Int
    public private(set) var count = 0
    public private(set) var sum: [Double]
    public private(set) var sumOfProducts: [Double]
    /// Raw features, kept when KID is wanted (`keepFeatures`).
    public private(set) var features: [Float] = []
    public let keepFeatures: Bool
    public let maxItems: Int?

    public init(dimension: Int, keepFeatures: Bool = false, maxItems: Int? = nil) {
        self.dimension = dimension
        self.keepFeatures = keepFeatures
        self.maxItems = maxItems
        sum = [Double](repeating: 0, count: dimension)
        sumOfProducts = [Double](repeating: 0, count: dimension * dimension)
    }

    /// Statistics restored from saved sums.
    public init(dimension: Int, sum: [Double], sumOfProducts: [Double], count: Int) {
        self.dimension = dimension
        self.sum = sum
        self.sumOfProducts = sumOfProducts
        self.count = count
        keepFeatures = false
        maxItems = nil
    }

    /// Adds a batch of features [N, D] (rows beyond `maxItems` are dropped).
    public func append(_ batch: Tensor) {
        guard batch.rank == 2, batch.shape[1] == dimension else { shapeFailure("features \(batch.shape) for dimension \(dimension)") }
        var rows = batch.shape[0]
        if let maxItems { rows = Swift.min(rows, Swift.max(0, maxItems - count)) }
        if rows == 0 { return }
        let d = dimension
        var x = [Double](repeating: 0, count: rows * d)
        for i in 0..<(rows * d) { x[i] = Double(batch.data[i]) }
        for r in 0..<rows { for j in 0..<d { sum[j] += x[r * d + j] } }
        x.withUnsafeBufferPointer { p in
            sumOfProducts.withUnsafeMutableBufferPointer { s in
                BLAS.dgemm(transposeA: true, transposeB: false, m: d, n: d, k: rows, a: p.baseAddress!, lda: d,
                           b: p.baseAddress!, ldb: d, beta: 1, c: s.baseAddress!, ldc: d)
            }
        }
        if keepFeatures { features.append(contentsOf: UnsafeBufferPointer(start: batch.data, count: rows * d)) }
        count += rows
    }

    /// Sums the statistics of every rank (collective).
    public func allReduce(_ comm: any Communicator) throws {
        try comm.allReduceSum(&sum)
        try comm.allReduceSum(&sumOfProducts)
        count = try comm.allReduceSum(count)
        if keepFeatures {
            let all = try comm.allGather(variable: features.withUnsafeBytes { Array($0) })
            features = all.flatMap { bytes in bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
        }
    }

    public var mean: [Double] { sum.map { $0 / Double(Swift.max(count, 1)) } }

    public var covariance: [Double] {
        let mu = mean, n = Double(Swift.max(count, 1)), d = dimension
        var c = sumOfProducts.map { $0 / n }
        for i in 0..<d { for j in 0..<d { c[i * d + j] -= mu[i] * mu[j] } }
        return c
    }
}

public enum FrechetDistance {
    public struct Result: Sendable {
        public var fid: Double
        public var meanTerm: Double
        public var traceSqrtm: Double
        public var traceSigma1: Double
        public var traceSigma2: Double
    }

    /// ||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), in Float64. tr sqrtm(S1 S2) is computed as
    /// sum sqrt(max(eig(A S1 A), 0)) with A = S2^(1/2) (symmetric eigendecompositions, LAPACK).
    public static func compute(mu1: [Double], sigma1: [Double], mu2: [Double], sigma2: [Double]) throws -> Result {
        let d = mu1.count
        guard mu2.count == d, sigma1.count == d * d, sigma2.count == d * d else {
            throw FIDError(message: "Frechet distance: inconsistent dimensions (\(d), \(mu2.count), \(sigma1.count), \(sigma2.count))")
        }
        var meanTerm = 0.0
        for i in 0..<d { meanTerm += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) }
        let a = try LAPACK.symmetricSquareRoot(sigma2, n: d)
        var t = [Double](repeating: 0, count: d * d), m = [Double](repeating: 0, count: d * d)
        a.withUnsafeBufferPointer { pa in
            sigma1.withUnsafeBufferPointer { ps in
                t.withUnsafeMutableBufferPointer { pt in
                    BLAS.dgemm(transposeA: false, transposeB: false, m: d, n: d, k: d, a: pa.baseAddress!, lda: d,
                               b: ps.baseAddress!, ldb: d, c: pt.baseAddress!, ldc: d)
                }
            }
        }
        t.withUnsafeBufferPointer { pt in
            a.withUnsafeBufferPointer { pa in
                m.withUnsafeMutableBufferPointer { pm in
                    BLAS.dgemm(transposeA: false, transposeB: false, m: d, n: d, k: d, a: pt.baseAddress!, lda: d,
                               b: pa.baseAddress!, ldb: d, c: pm.baseAddress!, ldc: d)
                }
            }
        }
        // Symmetrise against rounding before the eigendecomposition.
        for i in 0..<d { for j in (i + 1)..<max(d, i + 1) where j < d {
            let v = 0.5 * (m[i * d + j] + m[j * d + i])
            m[i * d + j] = v
            m[j * d + i] = v
        } }
        let (values, _) = try LAPACK.symmetricEigen(m, n: d)
        let traceSqrtm = values.reduce(0.0) { $0 + ($1 > 0 ? $1.squareRoot() : 0) }
        var tr1 = 0.0, tr2 = 0.0
        for i in 0..<d {
            tr1 += sigma1[i * d + i]
            tr2 += sigma2[i * d + i]
        }
        return Result(fid: meanTerm + tr1 + tr2 - 2 * traceSqrtm, meanTerm: meanTerm, traceSqrtm: traceSqrtm,
                      traceSigma1: tr1, traceSigma2: tr2)
    }

    /// FID between generated (1) and real (2) statistics.
    public static func compute(generated: FeatureStatistics, real: FeatureStatistics) throws -> Result {
        guard generated.count > 0, real.count > 0 else { throw FIDError(message: "FID needs at least one feature vector on each side") }
        return try compute(mu1: generated.mean, sigma1: generated.covariance, mu2: real.mean, sigma2: real.covariance)
    }
}

public enum KernelInceptionDistance {
    /// KID (stylegan2-ada kid50k_full): subsets of m = min(n_real, n_gen, maxSubsetSize) drawn
    /// without replacement, polynomial kernel (a.b / d + 1)^3.
    public static func compute(generated: [Float], real: [Float], dimension d: Int, subsets: Int = 100,
                               maxSubsetSize: Int = 1000, seed: UInt64 = 0) -> Double {
        let nGen = generated.count / d, nReal = real.count / d
        let m = Swift.min(nGen, nReal, maxSubsetSize)
        guard m >= 2 else { return .nan }
        let rng = RandomGenerator(seed: seed, stream: 7)
        var t = 0.0
        func gather(_ source: [Float], _ rows: [Int]) -> [Double] {
            var out = [Double](repeating: 0, count: rows.count * d)
            for (r, i) in rows.enumerated() { for k in 0..<d { out[r * d + k] = Double(source[i * d + k]) } }
            return out
        }
        /// sum over entries of (A B^T / d + 1)^3, optionally without the diagonal.
        func kernelSum(_ a: [Double], _ b: [Double], skipDiagonal: Bool) -> Double {
            var k = [Double](repeating: 0, count: m * m)
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    k.withUnsafeMutableBufferPointer { pk in
                        BLAS.dgemm(transposeA: false, transposeB: true, m: m, n: m, k: d, alpha: 1 / Double(d),
                                   a: pa.baseAddress!, lda: d, b: pb.baseAddress!, ldb: d, c: pk.baseAddress!, ldc: m)
                    }
                }
            }
            var total = 0.0
            for i in 0..<m {
                for j in 0..<m where !(skipDiagonal && i == j) {
                    let v = k[i * m + j] + 1
                    total += v * v * v
                }
            }
            return total
        }
        for _ in 0..<subsets {
            let x = gather(generated, Array(rng.permutation(nGen).prefix(m)))
            let y = gather(real, Array(rng.permutation(nReal).prefix(m)))
            let a = kernelSum(x, x, skipDiagonal: true) + kernelSum(y, y, skipDiagonal: true)
            t += a / Double(m - 1) - 2 * kernelSum(x, y, skipDiagonal: false) / Double(m)
        }
        return t / Double(subsets) / Double(m)
    }
}
