// Sums and means over dimensions, variance, and the broadcast pair `sumTo` / `broadcastTo`
// (each is the other's gradient). Reductions over several dimensions run as successive
// reductions of contiguous runs, so results never depend on the thread count.

extension Tensor {
    /// Sum over `dims` (all dimensions when nil).
    public func sum(dims: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let reduced = Set((dims ?? Array(0..<rank)).map { normalizeDim($0, rank: rank) })
        let keptShape = shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
        let outShape = keepDims ? keptShape : shape.enumerated().filter { !reduced.contains($0.offset) }.map(\.element)
        let out = sumKernel(reduced).reshapedUntracked(outShape)
        let inputShape = shape
        return out.recorded("sum", [self]) { g, _ in
            [g.reshaped(keptShape).broadcastTo(inputShape)]
        }
    }

    public func mean(dims: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let reduced = (dims ?? Array(0..<rank)).map { normalizeDim($0, rank: rank) }
        let n = Set(reduced).reduce(1) { $0 * shape[$1] }
        return sum(dims: reduced, keepDims: keepDims) * (1 / Float(max(n, 1)))
    }

    /// Variance over `dims` with `correction` (1: unbiased, 0: population).
    public func variance(dims: [Int]? = nil, correction: Int = 1, keepDims: Bool = false) -> Tensor {
        let reduced = (dims ?? Array(0..<rank)).map { normalizeDim($0, rank: rank) }
        let n = Set(reduced).reduce(1) { $0 * shape[$1] }
        let centered = self - mean(dims: reduced, keepDims: true)
        return (centered * centered).sum(dims: reduced, keepDims: keepDims) * (1 / Float(max(n - correction, 1)))
    }

    /// Sums broadcast dimensions away so the result has `target` shape.
    public func sumTo(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        guard lead >= 0 else { shapeFailure("sumTo \(target) from \(shape)") }
        var dims = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { dims.append(lead + i) }
        let s = dims.isEmpty ? self : sum(dims: dims, keepDims: true)
        return s.reshaped(target)
    }

    /// Materialises the broadcast of `self` to `target` (a copy).
    public func broadcastTo(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        guard broadcastShapes(shape, target) == target else { shapeFailure("cannot broadcast \(shape) to \(target)") }
        let inputShape = shape
        return Elementwise.expand(self, to: target).recorded("broadcast_to", [self]) { g, _ in [g.sumTo(inputShape)] }
    }

    /// Untracked sum over a set of dimensions (successive contiguous-run reductions).
    func sumKernel(_ reduced: Set<Int>) -> Tensor {
        if reduced.isEmpty { return copy() }
        var current = self
        var currentShape = shape
        // Process maximal runs of reduced dimensions from the innermost outwards.
        var d = rank - 1
        while d >= 0 {
            if !reduced.contains(d) {
                d -= 1
                continue
            }
            var start = d
            while start - 1 >= 0 && reduced.contains(start - 1) { start -= 1 }
            let outer = currentShape[0..<start].reduce(1, *)
            let r = currentShape[start...d].reduce(1, *)
            let inner = currentShape[(d + 1)...].reduce(1, *)
            let next = Tensor(uninitializedShape: Array(currentShape[0..<start]) + [1] + Array(currentShape[(d + 1)...]))
            if r == 0 {
                next.fill(0)
            } else {
                Reduce.sumMiddle(current.data, outer: outer, r: r, inner: inner, into: next.data)
            }
            // Keep rank bookkeeping: replace the run by ones.
            currentShape = Array(currentShape[0..<start]) + [Int](repeating: 1, count: d - start + 1) + Array(currentShape[(d + 1)...])
            current = next.reshapedUntracked(currentShape)
            d = start - 1
        }
        return current
    }
}
