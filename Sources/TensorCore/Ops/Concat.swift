// Concatenation, stacking, slicing and splitting. Slicing's gradient places the gradient into
// zeros (`sliceAdjoint`), whose gradient is the slice again.

/// Copies the block of `src` (shape [outer, n, inner]) into `dst` (shape [outer, m, inner])
/// at offset `at` along the middle dimension.
private func copyBlock(_ src: UnsafePointer<Float>, outer: Int, n: Int, inner: Int,
                       into dst: UnsafeMutablePointer<Float>, m: Int, at: Int) {
    let run = n * inner
    Parallel.forRange(outer, grain: max(1, 16_384 / max(run, 1))) { r in
        for o in r { (dst + (o * m + at) * inner).update(from: src + o * run, count: run) }
    }
}

/// Concatenates tensors along `dim`.
public func concatenate(_ tensors: [Tensor], dim: Int) -> Tensor {
    guard let first = tensors.first else { shapeFailure("concatenate of no tensors") }
    let d = normalizeDim(dim, rank: first.rank)
    for t in tensors where t.rank != first.rank || (0..<first.rank).contains(where: { $0 != d && t.shape[$0] != first.shape[$0] }) {
        shapeFailure("concatenate along \(dim): shapes \(tensors.map(\.shape)) differ outside that dimension")
    }
    var outShape = first.shape
    outShape[d] = tensors.reduce(0) { $0 + $1.shape[d] }
    let out = Tensor(uninitializedShape: outShape)
    let outer = first.shape[0..<d].reduce(1, *), inner = first.shape[(d + 1)...].reduce(1, *)
    var offset = 0
    var offsets: [Int] = []
    for t in tensors {
        offsets.append(offset)
        copyBlock(t.data, outer: outer, n: t.shape[d], inner: inner, into: out.data, m: outShape[d], at: offset)
        offset += t.shape[d]
    }
    let sizes = tensors.map { $0.shape[d] }
    return out.recorded("cat", tensors) { g, needs in
        sizes.indices.map { i in needs[i] ? g.slice(dim: d, start: offsets[i], end: offsets[i] + sizes[i]) : nil }
    }
}

/// Stacks equally shaped tensors along a new dimension `dim`.
public func stack(_ tensors: [Tensor], dim: Int = 0) -> Tensor {
    concatenate(tensors.map { $0.unsqueezed(dim) }, dim: dim)
}

extension Tensor {
    /// Elements `start ..< end` along `dim` (a copy).
    public func slice(dim: Int, start: Int, end: Int) -> Tensor {
        let d = normalizeDim(dim, rank: rank)
        guard start >= 0, end <= shape[d], start <= end else { shapeFailure("slice \(start)..<\(end) of dimension \(d) of \(shape)") }
        if start == 0 && end == shape[d] { return self }
        var outShape = shape
        outShape[d] = end - start
        let out = Tensor(uninitializedShape: outShape)
        let outer = shape[0..<d].reduce(1, *), inner = shape[(d + 1)...].reduce(1, *)
        let run = (end - start) * inner, n = shape[d]
        let src = data, dst = out.data
        Parallel.forRange(outer, grain: max(1, 16_384 / max(run, 1))) { r in
            for o in r { (dst + o * run).update(from: src + (o * n + start) * inner, count: run) }
        }
        return out.recorded("slice", [self]) { g, _ in [g.sliceAdjoint(dim: d, start: start, fullSize: n)] }
    }

    /// Zeros of the full size with `self` placed at `start` along `dim` (adjoint of slice).
    func sliceAdjoint(dim d: Int, start: Int, fullSize: Int) -> Tensor {
        var outShape = shape
        outShape[d] = fullSize
        let out = Tensor.zeros(outShape)
        let outer = shape[0..<d].reduce(1, *), inner = shape[(d + 1)...].reduce(1, *)
        copyBlock(data, outer: outer, n: shape[d], inner: inner, into: out.data, m: fullSize, at: start)
        let size = shape[d]
        return out.recorded("slice_adjoint", [self]) { g, _ in [g.slice(dim: d, start: start, end: start + size)] }
    }

    /// Splits along `dim` into pieces of the given sizes.
    public func split(sizes: [Int], dim: Int) -> [Tensor] {
        let d = normalizeDim(dim, rank: rank)
        guard sizes.reduce(0, +) == shape[d] else { shapeFailure("split sizes \(sizes) do not add up to \(shape[d])") }
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(dim: d, start: start, end: start + size)
        }
    }

    /// Splits along `dim` into `parts` equal pieces.
    public func chunked(_ parts: Int, dim: Int) -> [Tensor] {
        let d = normalizeDim(dim, rank: rank)
        guard shape[d] % parts == 0 else { shapeFailure("cannot split \(shape[d]) into \(parts) equal parts") }
        return split(sizes: [Int](repeating: shape[d] / parts, count: parts), dim: d)
    }
}
