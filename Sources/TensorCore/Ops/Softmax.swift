// softmax, log_softmax and cross-entropy with integer labels, along one dimension.
// Forward passes subtract the row maximum; gradients are written with differentiable ops.
#if canImport(Glibc)
import Glibc
#endif

/// Applies `body(input row, output row, length, stride)` to every row along `dim`.
private func rows(_ x: Tensor, dim: Int, _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int) -> Void) -> Tensor {
    let d = normalizeDim(dim, rank: x.rank)
    let n = x.shape[d], inner = x.shape[(d + 1)...].reduce(1, *), outer = x.shape[0..<d].reduce(1, *)
    let out = Tensor(uninitializedShape: x.shape)
    let src = x.data, dst = out.data
    Parallel.forRange(outer * inner, grain: max(1, 8192 / max(n, 1))) { r in
        for idx in r {
            let o = idx / inner, i = idx % inner
            let off = o * n * inner + i
            body(src + off, dst + off, n, inner)
        }
    }
    return out
}

extension Tensor {
    public func softmax(dim: Int) -> Tensor {
        let out = rows(self, dim: dim) { s, d, n, stride in
            var m = -Float.infinity
            for k in 0..<n { m = Swift.max(m, s[k * stride]) }
            var total: Float = 0
            for k in 0..<n {
                let e = Glibc.expf(s[k * stride] - m)
                d[k * stride] = e
                total += e
            }
            for k in 0..<n { d[k * stride] /= total }
        }
        return out.recordedWithOutput("softmax", [self]) { g, _, out in
            [out * (g - (g * out).sum(dims: [dim], keepDims: true))]
        }
    }

    public func logSoftmax(dim: Int) -> Tensor {
        let out = rows(self, dim: dim) { s, d, n, stride in
            var m = -Float.infinity
            for k in 0..<n { m = Swift.max(m, s[k * stride]) }
            var total: Float = 0
            for k in 0..<n { total += Glibc.expf(s[k * stride] - m) }
            let lse = m + Glibc.logf(total)
            for k in 0..<n { d[k * stride] = s[k * stride] - lse }
        }
        return out.recordedWithOutput("log_softmax", [self]) { g, _, out in
            [g - out.exp() * g.sum(dims: [dim], keepDims: true)]
        }
    }
}

/// Mean cross-entropy of logits [N, C] against integer labels (PyTorch F.cross_entropy).
public func crossEntropy(_ logits: Tensor, labels: [Int]) -> Tensor {
    -logits.logSoftmax(dim: 1).pick(labels: labels).mean()
}
