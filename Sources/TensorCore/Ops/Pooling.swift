// Pooling over windows given per axis: average pooling (plain and adaptive, with or without
// counting padded cells) as a linear operation whose adjoint is its gradient, and max pooling
// (plain and adaptive) as a gather of the first maximal element of each window.

/// Per-axis pooling windows: summation range [start, end) and the divisor factor.
struct PoolWindows: Sendable {
    var starts: [Int] = []
    var ends: [Int] = []
    var divisors: [Int] = []
    var count: Int { starts.count }

    /// Windows of PyTorch pooling with kernel k, stride s, padding p (no ceil mode).
    static func regular(size n: Int, kernel k: Int, stride s: Int, padding p: Int, countIncludePad: Bool) -> PoolWindows {
        guard k >= 1, s >= 1, p >= 0, 2 * p <= k else { shapeFailure("pooling: kernel \(k), stride \(s), padding \(p) invalid") }
        let m = (n + 2 * p - k) / s + 1
        guard m >= 1 else { shapeFailure("pooling: input size \(n) smaller than kernel \(k)") }
        var w = PoolWindows()
        for i in 0..<m {
            let start = i * s - p
            let endPadded = min(start + k, n + p)
            let lo = max(start, 0), hi = min(endPadded, n)
            w.starts.append(lo)
            w.ends.append(hi)
            w.divisors.append(countIncludePad ? endPadded - start : hi - lo)
        }
        return w
    }

    /// Adaptive windows: [floor(i n / m), ceil((i + 1) n / m)).
    static func adaptive(size n: Int, output m: Int) -> PoolWindows {
        guard m >= 1, n >= 1 else { shapeFailure("adaptive pooling from \(n) to \(m)") }
        var w = PoolWindows()
        for i in 0..<m {
            let lo = (i * n) / m, hi = ((i + 1) * n + m - 1) / m
            w.starts.append(lo)
            w.ends.append(hi)
            w.divisors.append(hi - lo)
        }
        return w
    }
}

/// Average over windows: y[p, i, j] = sum_{window} x / (divY[i] divX[j]).
func windowAverage(_ x: Tensor, _ wy: PoolWindows, _ wx: PoolWindows) -> Tensor {
    let h = x.shape[x.rank - 2], w = x.shape[x.rank - 1]
    let planes = x.count / max(h * w, 1)
    let oh = wy.count, ow = wx.count
    let out = Tensor(uninitializedShape: Array(x.shape.dropLast(2)) + [oh, ow])
    let src = x.data, dst = out.data
    Parallel.forRange(planes, grain: max(1, 4096 / max(h * w, 1))) { r in
        for pl in r {
            let s = src + pl * h * w, d = dst + pl * oh * ow
            for i in 0..<oh {
                for j in 0..<ow {
                    var acc: Float = 0
                    for y in wy.starts[i]..<wy.ends[i] {
                        for xx in wx.starts[j]..<wx.ends[j] { acc += s[y * w + xx] }
                    }
                    d[i * ow + j] = acc / Float(wy.divisors[i] * wx.divisors[j])
                }
            }
        }
    }
    return out.recorded("avg_pool", [x]) { g, _ in [windowAverageAdjoint(g, wy, wx, inputShape: x.shape)] }
}

/// Adjoint of `windowAverage`: spreads g / divisor over each window.
func windowAverageAdjoint(_ g: Tensor, _ wy: PoolWindows, _ wx: PoolWindows, inputShape: [Int]) -> Tensor {
    let h = inputShape[inputShape.count - 2], w = inputShape[inputShape.count - 1]
    let oh = wy.count, ow = wx.count
    let planes = g.count / max(oh * ow, 1)
    let out = Tensor.zeros(inputShape)
    let src = g.data, dst = out.data
    Parallel.forRange(planes, grain: max(1, 4096 / max(h * w, 1))) { r in
        for pl in r {
            let s = src + pl * oh * ow, d = dst + pl * h * w
            for i in 0..<oh {
                for j in 0..<ow {
                    let v = s[i * ow + j] / Float(wy.divisors[i] * wx.divisors[j])
                    for y in wy.starts[i]..<wy.ends[i] {
                        for xx in wx.starts[j]..<wx.ends[j] { d[y * w + xx] += v }
                    }
                }
            }
        }
    }
    return out.recorded("avg_pool_adjoint", [g]) { gg, _ in [windowAverage(gg, wy, wx)] }
}

/// Max over windows (first maximal element in row-major order), as a gather.
func windowMax(_ x: Tensor, _ wy: PoolWindows, _ wx: PoolWindows) -> Tensor {
    let h = x.shape[x.rank - 2], w = x.shape[x.rank - 1]
    let planes = x.count / max(h * w, 1)
    let oh = wy.count, ow = wx.count
    var indices = [Int32](repeating: 0, count: planes * oh * ow)
    let src = x.data
    indices.withUnsafeMutableBufferPointer { idx in
        Parallel.forRange(planes, grain: max(1, 4096 / max(h * w, 1))) { r in
            for pl in r {
                let base = pl * h * w
                for i in 0..<oh {
                    for j in 0..<ow {
                        var best = -Float.infinity
                        var bestIndex = base + wy.starts[i] * w + wx.starts[j]
                        var first = true
                        for y in wy.starts[i]..<wy.ends[i] {
                            for xx in wx.starts[j]..<wx.ends[j] {
                                let v = src[base + y * w + xx]
                                if first || v > best || v.isNaN {
                                    best = v
                                    bestIndex = base + y * w + xx
                                    first = false
                                    if v.isNaN { break }
                                }
                            }
                        }
                        idx[(pl * oh + i) * ow + j] = Int32(bestIndex)
                    }
                }
            }
        }
    }
    return gather(x, FlatIndices(indices), outShape: Array(x.shape.dropLast(2)) + [oh, ow])
}

extension Tensor {
    public func avgPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) -> Tensor {
        let s = stride ?? kernel
        return windowAverage(self,
                             .regular(size: shape[rank - 2], kernel: kernel, stride: s, padding: padding, countIncludePad: countIncludePad),
                             .regular(size: shape[rank - 1], kernel: kernel, stride: s, padding: padding, countIncludePad: countIncludePad))
    }

    public func maxPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0) -> Tensor {
        let s = stride ?? kernel
        return windowMax(self,
                         .regular(size: shape[rank - 2], kernel: kernel, stride: s, padding: padding, countIncludePad: false),
                         .regular(size: shape[rank - 1], kernel: kernel, stride: s, padding: padding, countIncludePad: false))
    }

    public func adaptiveAvgPool2d(_ size: (Int, Int)) -> Tensor {
        windowAverage(self, .adaptive(size: shape[rank - 2], output: size.0), .adaptive(size: shape[rank - 1], output: size.1))
    }

    public func adaptiveAvgPool2d(_ size: Int) -> Tensor { adaptiveAvgPool2d((size, size)) }

    public func adaptiveMaxPool2d(_ size: (Int, Int)) -> Tensor {
        windowMax(self, .adaptive(size: shape[rank - 2], output: size.0), .adaptive(size: shape[rank - 1], output: size.1))
    }

    public func adaptiveMaxPool2d(_ size: Int) -> Tensor { adaptiveMaxPool2d((size, size)) }

    /// Maximum over `dims` (first maximal element), as a gather.
    public func amax(dims: [Int], keepDims: Bool = false) -> Tensor { extremum(dims: dims, keepDims: keepDims, largest: true) }

    public func amin(dims: [Int], keepDims: Bool = false) -> Tensor { extremum(dims: dims, keepDims: keepDims, largest: false) }

    private func extremum(dims: [Int], keepDims: Bool, largest: Bool) -> Tensor {
        let reduced = Set(dims.map { normalizeDim($0, rank: rank) })
        let kept = (0..<rank).filter { !reduced.contains($0) }
        let order = kept + reduced.sorted()
        let outer = kept.reduce(1) { $0 * shape[$1] }, r = reduced.reduce(1) { $0 * shape[$1] }
        // Flat input index of every element in the permuted (kept..., reduced...) order.
        let strides = contiguousStrides(shape)
        let permutedShape = order.map { shape[$0] }
        var indices = [Int32](repeating: 0, count: outer)
        let src = data
        for o in 0..<outer {
            var best: Float = largest ? -.infinity : .infinity
            var bestIndex = -1
            for k in 0..<r {
                var rem = o * r + k, off = 0
                for d in stride(from: order.count - 1, through: 0, by: -1) {
                    off += (rem % permutedShape[d]) * strides[order[d]]
                    rem /= permutedShape[d]
                }
                let v = src[off]
                if bestIndex < 0 || (largest ? v > best : v < best) || v.isNaN {
                    best = v
                    bestIndex = off
                    if v.isNaN { break }
                }
            }
            indices[o] = Int32(bestIndex)
        }
        let outShape = keepDims ? shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element } : kept.map { shape[$0] }
        return gather(self, FlatIndices(indices), outShape: outShape)
    }
}
