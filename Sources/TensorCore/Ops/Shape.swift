// Shape operations: reshape (shares storage), permute / transpose (copies), flip, and the
// squeeze / unsqueeze / flatten conveniences.

extension Tensor {
    /// The same values with another shape (one dimension may be -1). Shares storage.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let resolved = resolveShape(newShape)
        if resolved == shape { return self }
        let out = reshapedUntracked(resolved)
        let inputShape = shape
        return out.recorded("reshape", [self]) { g, _ in [g.reshaped(inputShape)] }
    }

    func reshapedUntracked(_ newShape: [Int]) -> Tensor {
        guard newShape.elementCount == count else { shapeFailure("cannot reshape \(shape) (\(count) elements) to \(newShape)") }
        return Tensor(shape: newShape, sharing: storage)
    }

    private func resolveShape(_ newShape: [Int]) -> [Int] {
        guard let unknown = newShape.firstIndex(of: -1) else { return newShape }
        let known = newShape.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * $1.element }
        guard known > 0, count % known == 0 else { shapeFailure("cannot reshape \(shape) to \(newShape)") }
        var s = newShape
        s[unknown] = count / known
        return s
    }

    /// Flattens dimensions `start...` into one.
    public func flattened(from start: Int = 1) -> Tensor {
        let s = normalizeDim(start, rank: rank)
        return reshaped(Array(shape[0..<s]) + [shape[s...].reduce(1, *)])
    }

    public func unsqueezed(_ dim: Int) -> Tensor {
        let d = dim < 0 ? dim + rank + 1 : dim
        var s = shape
        s.insert(1, at: d)
        return reshaped(s)
    }

    public func squeezed(_ dim: Int) -> Tensor {
        let d = normalizeDim(dim, rank: rank)
        guard shape[d] == 1 else { shapeFailure("squeeze dimension \(dim) of \(shape) is not 1") }
        var s = shape
        s.remove(at: d)
        return reshaped(s)
    }

    /// Reorders dimensions: output dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        guard order.sorted() == Array(0..<rank) else { shapeFailure("invalid permutation \(order) for rank \(rank)") }
        if order == Array(0..<rank) { return self }
        let outShape = order.map { shape[$0] }
        let out = Tensor(uninitializedShape: outShape)
        let inStrides = contiguousStrides(shape)
        let strides = order.map { inStrides[$0] }
        let src = data, dst = out.data
        let inner = outShape.last ?? 1, innerStride = strides.last ?? 1
        let outer = count / max(inner, 1)
        if count > 0 {
            Parallel.forRange(outer, grain: max(1, 16_384 / inner)) { rows in
                for row in rows {
                    var rem = row, off = 0
                    for d in stride(from: outShape.count - 2, through: 0, by: -1) {
                        off += (rem % outShape[d]) * strides[d]
                        rem /= outShape[d]
                    }
                    let o = dst + row * inner
                    for i in 0..<inner { o[i] = src[off + i * innerStride] }
                }
            }
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return out.recorded("permute", [self]) { g, _ in [g.permuted(inverse)] }
    }

    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(normalizeDim(a, rank: rank), normalizeDim(b, rank: rank))
        return permuted(order)
    }

    /// Matrix transpose of a 2-D tensor.
    public var T: Tensor { transposed(0, 1) }

    /// Reverses the order of elements along `dims`.
    public func flipped(_ dims: [Int]) -> Tensor {
        let flip = Set(dims.map { normalizeDim($0, rank: rank) })
        let out = Tensor(uninitializedShape: shape)
        let strides = contiguousStrides(shape)
        let src = data, dst = out.data
        let innerDim = rank - 1
        let inner = shape.last ?? 1
        let outer = count / max(inner, 1)
        let flipInner = flip.contains(innerDim)
        if count > 0 {
            Parallel.forRange(outer, grain: max(1, 16_384 / inner)) { rows in
                for row in rows {
                    var rem = row, off = 0
                    for d in stride(from: rank - 2, through: 0, by: -1) {
                        let idx = rem % shape[d]
                        rem /= shape[d]
                        off += (flip.contains(d) ? shape[d] - 1 - idx : idx) * strides[d]
                    }
                    let o = dst + row * inner
                    if flipInner {
                        for i in 0..<inner { o[i] = src[off + inner - 1 - i] }
                    } else {
                        o.update(from: src + off, count: inner)
                    }
                }
            }
        }
        return out.recorded("flip", [self]) { g, _ in [g.flipped(Array(flip))] }
    }
}
