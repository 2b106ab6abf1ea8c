// Element-wise kernels: unary maps and broadcasting binary maps over contiguous buffers,
// multi-threaded over contiguous ranges. The kernels are generic over the element function
// (ElementFunctions.swift), so each specialisation inlines and vectorises its loop.

enum Elementwise {
    /// out[i] = f(x[i]).
    static func map<F: UnaryFunction>(_ x: Tensor, _ f: F) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        let src = x.data, dst = out.data
        Parallel.forRange(x.count) { r in
            for i in r { dst[i] = f(src[i]) }
        }
        return out
    }

    /// out[i] = f(a[i], b[i]) for equal shapes.
    static func zip<F: BinaryFunction>(_ a: Tensor, _ b: Tensor, _ f: F) -> Tensor {
        guard a.count == b.count else { shapeFailure("element-wise op on \(a.shape) and \(b.shape)") }
        let out = Tensor(uninitializedShape: a.shape)
        let pa = a.data, pb = b.data, dst = out.data
        Parallel.forRange(a.count) { r in
            for i in r { dst[i] = f(pa[i], pb[i]) }
        }
        return out
    }

    /// out[i] = f(a[i], b[i], c[i]) for equal element counts.
    static func zip3<F: TernaryFunction>(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: F) -> Tensor {
        guard a.count == b.count && a.count == c.count else { shapeFailure("element-wise op on \(a.shape), \(b.shape), \(c.shape)") }
        let out = Tensor(uninitializedShape: a.shape)
        let pa = a.data, pb = b.data, pc = c.data, dst = out.data
        Parallel.forRange(a.count) { r in
            for i in r { dst[i] = f(pa[i], pb[i], pc[i]) }
        }
        return out
    }

    /// Broadcasting binary map (NumPy rules).
    static func broadcast<F: BinaryFunction>(_ a: Tensor, _ b: Tensor, _ f: F) -> Tensor {
        if a.shape == b.shape { return zip(a, b, f) }
        let outShape = broadcastShapes(a.shape, b.shape)
        let out = Tensor(uninitializedShape: outShape)
        if out.count == 0 { return out }
        let pa = a.data, pb = b.data, dst = out.data
        if b.count == 1 {
            let bv = pb[0]
            if a.count == out.count {
                Parallel.forRange(out.count) { r in for i in r { dst[i] = f(pa[i], bv) } }
                return out
            }
        }
        if a.count == 1 && b.count == out.count {
            let av = pa[0]
            Parallel.forRange(out.count) { r in for i in r { dst[i] = f(av, pb[i]) } }
            return out
        }
        // Strides of a and b in the output index space (0 along broadcast dimensions), then
        // merge dimensions that are contiguous for both inputs.
        let rank = outShape.count
        func aligned(_ shape: [Int]) -> [Int] {
            let padded = [Int](repeating: 1, count: rank - shape.count) + shape
            let strides = contiguousStrides(padded)
            return (0..<rank).map { padded[$0] == 1 && outShape[$0] != 1 ? 0 : strides[$0] }
        }
        var dims: [Int] = []
        var sa: [Int] = [], sb: [Int] = []
        let fa = aligned(a.shape), fb = aligned(b.shape)
        for d in 0..<rank where outShape[d] != 1 {
            if let last = dims.last, sa.last! == fa[d] * outShape[d], sb.last! == fb[d] * outShape[d] {
                dims[dims.count - 1] = last * outShape[d]
                sa[sa.count - 1] = fa[d]
                sb[sb.count - 1] = fb[d]
            } else {
                dims.append(outShape[d])
                sa.append(fa[d])
                sb.append(fb[d])
            }
        }
        let inner = dims.last!, ia = sa.last!, ib = sb.last!
        let outer = out.count / inner
        let outerDims = Array(dims.dropLast()), outerA = Array(sa.dropLast()), outerB = Array(sb.dropLast())
        Parallel.forRange(outer, grain: max(1, 32_768 / inner)) { rows in
            for row in rows {
                // Decompose the outer index into offsets of a and b.
                var rem = row, offA = 0, offB = 0
                for d in stride(from: outerDims.count - 1, through: 0, by: -1) {
                    let idx = rem % outerDims[d]
                    rem /= outerDims[d]
                    offA += idx * outerA[d]
                    offB += idx * outerB[d]
                }
                let o = dst + row * inner, x = pa + offA, y = pb + offB
                if ia == 1 && ib == 1 {
                    for i in 0..<inner { o[i] = f(x[i], y[i]) }
                } else if ia == 1 {
                    let yv = y[0]
                    for i in 0..<inner { o[i] = f(x[i], yv) }
                } else if ib == 1 {
                    let xv = x[0]
                    for i in 0..<inner { o[i] = f(xv, y[i]) }
                } else {
                    for i in 0..<inner { o[i] = f(x[i * ia], y[i * ib]) }
                }
            }
        }
        return out
    }
}

extension Elementwise {
    /// Copy of `x` broadcast to `target` (NumPy rules; `target` must be compatible).
    static func expand(_ x: Tensor, to target: [Int]) -> Tensor {
        let out = Tensor(uninitializedShape: target)
        if out.count == 0 { return out }
        let src = x.data, dst = out.data
        if x.count == 1 {
            out.fill(src[0])
            return out
        }
        let rank = target.count
        let padded = [Int](repeating: 1, count: rank - x.rank) + x.shape
        let strides = contiguousStrides(padded)
        var dims: [Int] = [], sx: [Int] = []
        for d in 0..<rank where target[d] != 1 {
            let s = padded[d] == 1 ? 0 : strides[d]
            if let last = dims.last, sx.last! == s * target[d] {
                dims[dims.count - 1] = last * target[d]
                sx[sx.count - 1] = s
            } else {
                dims.append(target[d])
                sx.append(s)
            }
        }
        let inner = dims.last!, innerStride = sx.last!
        let outer = out.count / inner
        let outerDims = Array(dims.dropLast()), outerStrides = Array(sx.dropLast())
        Parallel.forRange(outer, grain: max(1, 32_768 / inner)) { rows in
            for row in rows {
                var rem = row, off = 0
                for d in stride(from: outerDims.count - 1, through: 0, by: -1) {
                    off += (rem % outerDims[d]) * outerStrides[d]
                    rem /= outerDims[d]
                }
                let o = dst + row * inner
                if innerStride == 1 {
                    o.update(from: src + off, count: inner)
                } else {
                    o.update(repeating: src[off], count: inner)
                }
            }
        }
        return out
    }
}

enum Reduce {
    /// Sum of a contiguous run, in blocks of SIMD float lanes combined in Double. The result
    /// does not depend on threads.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        var total = 0.0
        var i = 0
        while i < n {
            let end = min(n, i + 4096)
            var acc = SIMD16<Float>()
            var j = i
            let raw = UnsafeRawPointer(p)
            while j + 16 <= end {
                acc += raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self)
                j += 16
            }
            var tail: Float = 0
            while j < end {
                tail += p[j]
                j += 1
            }
            total += Double(acc.sum()) + Double(tail)
            i = end
        }
        return total
    }

    /// Sum of squares of a contiguous run.
    @inline(__always)
    static func sumOfSquares(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        var total = 0.0
        var i = 0
        while i < n {
            let end = min(n, i + 4096)
            var acc = SIMD16<Float>()
            var j = i
            let raw = UnsafeRawPointer(p)
            while j + 16 <= end {
                let v = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self)
                acc += v * v
                j += 16
            }
            var tail: Float = 0
            while j < end {
                tail += p[j] * p[j]
                j += 1
            }
            total += Double(acc.sum()) + Double(tail)
            i = end
        }
        return total
    }

    /// Dot product of two contiguous runs.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
        var total = 0.0
        var i = 0
        while i < n {
            let end = min(n, i + 4096)
            var acc = SIMD16<Float>()
            var j = i
            let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
            while j + 16 <= end {
                acc += ra.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self)
                j += 16
            }
            var tail: Float = 0
            while j < end {
                tail += a[j] * b[j]
                j += 1
            }
            total += Double(acc.sum()) + Double(tail)
            i = end
        }
        return total
    }

    /// out[o, i] = sum_r x[o, r, i] for x viewed as [outer, r, inner].
    static func sumMiddle(_ x: UnsafePointer<Float>, outer: Int, r: Int, inner: Int, into out: UnsafeMutablePointer<Float>) {
        if inner == 1 {
            Parallel.forRange(outer, grain: max(1, 65_536 / max(1, r))) { rows in
                for o in rows { out[o] = Float(sum(x + o * r, r)) }
            }
            return
        }
        // Sum rows in order; accumulate in Double chunks of the inner dimension.
        let chunk = 1024
        let chunks = (inner + chunk - 1) / chunk
        Parallel.forRange(outer * chunks, grain: max(1, 65_536 / max(1, r * min(inner, chunk)))) { items in
            var acc = [Double](repeating: 0, count: chunk)
            for item in items {
                let o = item / chunks, c = item % chunks
                let lo = c * chunk, n = min(chunk, inner - lo)
                acc.withUnsafeMutableBufferPointer { a in
                    for i in 0..<n { a[i] = 0 }
                    for row in 0..<r {
                        let src = x + (o * r + row) * inner + lo
                        for i in 0..<n { a[i] += Double(src[i]) }
                    }
                    let dst = out + o * inner + lo
                    for i in 0..<n { dst[i] = Float(a[i]) }
                }
            }
        }
    }
}
