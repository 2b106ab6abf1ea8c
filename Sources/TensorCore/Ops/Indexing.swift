// Gather and scatter by flat indices (each the other's gradient), and what is built on them:
// index_select along a dimension, and picking one entry per row (cross-entropy labels).

/// Shared, immutable flat indices.
final class FlatIndices: @unchecked Sendable {
    let values: [Int32]
    init(_ values: [Int32]) { self.values = values }
}

/// out.flat[i] = x.flat[indices[i]], with `outShape`.
func gather(_ x: Tensor, _ indices: FlatIndices, outShape: [Int]) -> Tensor {
    let out = Tensor(uninitializedShape: outShape)
    guard out.count == indices.values.count else { shapeFailure("gather: \(indices.values.count) indices for \(outShape)") }
    let src = x.data, dst = out.data
    indices.values.withUnsafeBufferPointer { idx in
        Parallel.forRange(out.count) { r in for i in r { dst[i] = src[Int(idx[i])] } }
    }
    let inputShape = x.shape
    return out.recorded("gather", [x]) { g, _ in [scatterAdd(g, indices, shape: inputShape)] }
}

/// out = zeros(shape); out.flat[indices[i]] += g.flat[i].
func scatterAdd(_ g: Tensor, _ indices: FlatIndices, shape: [Int]) -> Tensor {
    let out = Tensor.zeros(shape)
    let src = g.data, dst = out.data
    indices.values.withUnsafeBufferPointer { idx in
        for i in 0..<g.count { dst[Int(idx[i])] += src[i] }
    }
    let gradShape = g.shape
    return out.recorded("scatter_add", [g]) { gg, _ in [gather(gg, indices, outShape: gradShape)] }
}

extension Tensor {
    /// Entries `indices` along dimension `dim`.
    public func indexSelect(dim: Int, _ indices: [Int]) -> Tensor {
        let d = normalizeDim(dim, rank: rank)
        let outer = shape[0..<d].reduce(1, *), n = shape[d], inner = shape[(d + 1)...].reduce(1, *)
        var flat: [Int32] = []
        flat.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for i in indices {
                guard i >= 0 && i < n else { shapeFailure("indexSelect: index \(i) out of range 0..<\(n)") }
                for k in 0..<inner { flat.append(Int32((o * n + i) * inner + k)) }
            }
        }
        var outShape = shape
        outShape[d] = indices.count
        return gather(self, FlatIndices(flat), outShape: outShape)
    }

    /// For a [N, C] tensor, entry `labels[n]` of each row: [N].
    public func pick(labels: [Int]) -> Tensor {
        guard rank == 2, labels.count == shape[0] else { shapeFailure("pick: labels \(labels.count) for \(shape)") }
        let c = shape[1]
        let flat = labels.enumerated().map { n, l -> Int32 in
            guard l >= 0 && l < c else { shapeFailure("label \(l) out of range 0..<\(c)") }
            return Int32(n * c + l)
        }
        return gather(self, FlatIndices(flat), outShape: [labels.count])
    }
}
