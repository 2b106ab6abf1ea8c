// Matrix products on sgemm: 2-D and batched 3-D `matmul` with transpose flags (so gradients
// need no transposed copies), and `linear` (x W^T + b).
import LinearAlgebra

/// op(a) x op(b) where op transposes the last two dimensions when its flag is set.
/// a: [M, K] or [B, M, K] (transposed: [K, M] / [B, K, M]); same for b with [K, N].
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    guard (a.rank == 2 && b.rank == 2) || (a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0]) else {
        shapeFailure("matmul of \(a.shape) and \(b.shape)")
    }
    let batch = a.rank == 3 ? a.shape[0] : 1
    let ar = a.shape[a.rank - 2], ac = a.shape[a.rank - 1], br = b.shape[b.rank - 2], bc = b.shape[b.rank - 1]
    let m = transposeA ? ac : ar, k = transposeA ? ar : ac
    let kb = transposeB ? bc : br, n = transposeB ? br : bc
    guard k == kb else { shapeFailure("matmul: inner dimensions differ: \(a.shape)\(transposeA ? "^T" : "") x \(b.shape)\(transposeB ? "^T" : "")") }
    let out = Tensor(uninitializedShape: a.rank == 3 ? [batch, m, n] : [m, n])
    for i in 0..<batch {
        BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                   a: a.data + i * ar * ac, lda: ac, b: b.data + i * br * bc, ldb: bc,
                   c: out.data + i * m * n, ldc: n)
    }
    return out.recorded("matmul", [a, b], weightInput: 1) { g, needs in
        // d op(A) = G op(B)^T, d op(B) = op(A)^T G, transposed back where the flag is set.
        let ga = needs[0] ? (transposeA ? matmul(b, g, transposeA: transposeB, transposeB: true)
                                        : matmul(g, b, transposeA: false, transposeB: !transposeB)) : nil
        let gb = needs[1] ? (transposeB ? matmul(g, a, transposeA: true, transposeB: transposeA)
                                        : matmul(a, g, transposeA: !transposeA, transposeB: false)) : nil
        return [ga, gb]
    }
}

/// y = x W^T + b for x [..., in], weight [out, in], bias [out].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let inFeatures = weight.shape[1]
    guard x.shape.last == inFeatures else { shapeFailure("linear: input \(x.shape) for weight \(weight.shape)") }
    let flat = x.rank == 2 ? x : x.reshaped([-1, inFeatures])
    var y = matmul(flat, weight, transposeB: true)
    if let bias { y = y + bias }
    return x.rank == 2 ? y : y.reshaped(Array(x.shape.dropLast()) + [weight.shape[0]])
}
