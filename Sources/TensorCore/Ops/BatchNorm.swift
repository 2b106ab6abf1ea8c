// Batch normalisation over the channel dimension 1 of [N, C, ...] (PyTorch semantics):
// training normalises with the biased batch variance and updates the running statistics with
// the unbiased one (momentum weights the new value); evaluation uses the running statistics.
// Training runs fused kernels (per-channel reductions in Double, so results do not depend on
// threads); when a graph of the gradient is requested, the backward pass differentiates the
// same formula written with differentiable operations instead.

/// y = x * scale[c] + shift[c] along dimension 1 (followed by ReLU when `relu`).
public func channelAffine(_ x: Tensor, scale: Tensor, shift: Tensor?, relu: Bool = false) -> Tensor {
    let c = x.shape[1], inner = x.shape[2...].reduce(1, *)
    guard scale.count == c, shift.map({ $0.count == c }) ?? true else { shapeFailure("channelAffine: \(scale.shape) for \(x.shape)") }
    let out = Tensor(uninitializedShape: x.shape)
    let src = x.data, dst = out.data, sc = scale.data, sh = shift?.data
    Parallel.forRange(x.count / max(inner, 1), grain: max(1, 32_768 / max(inner, 1))) { rows in
        for row in rows {
            let ch = row % c
            let a = sc[ch], b = sh.map { $0[ch] } ?? 0
            let s = src + row * inner, d = dst + row * inner
            if relu {
                for i in 0..<inner { d[i] = Swift.max(s[i] * a + b, 0) }
            } else {
                for i in 0..<inner { d[i] = s[i] * a + b }
            }
        }
    }
    var inputs = [x, scale]
    if let shift { inputs.append(shift) }
    let reduceDims = [0] + Array(2..<x.rank)
    // x is kept only for the scale's gradient (a frozen network in evaluation mode does not keep it).
    return out.recordedSavingOutput(if: relu, relu ? "channel_affine_relu" : "channel_affine", inputs) { [keptX = scale.requiresGrad ? x : nil] gradient, needs, out in
        let g = out.map { maskGradient(gradient, reference: $0, slope: 0) } ?? gradient
        var grads: [Tensor?] = [needs[0] ? channelAffine(g, scale: scale, shift: nil) : nil,
                                needs[1] ? (g * keptX!).sum(dims: reduceDims) : nil]
        if shift != nil { grads.append(needs[2] ? g.sum(dims: reduceDims) : nil) }
        return grads
    }
}

/// Sums per-channel statistics across the processes of a data-parallel job (synchronised
/// batch normalisation). `values` are summed in place over every process.
public protocol StatisticsReducer: AnyObject {
    func sum(_ values: UnsafeMutableBufferPointer<Double>)
}

/// Batch normalisation, optionally fused with the ReLU that follows it (`relu`): one pass
/// forward, one mask applied inside the backward kernel, and no separate pre-activation tensor.
/// With a `reducer`, training statistics are those of the batch over every process
/// (SyncBatchNorm): the mean, the variance and the backward sums are reduced across processes;
/// the weight and bias gradients stay local (the data-parallel gradient average combines them).
public func batchNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5, relu: Bool = false,
                      reducer: StatisticsReducer? = nil) -> Tensor {
    guard x.rank >= 2 else { shapeFailure("batchNorm expects [N, C, ...], got \(x.shape)") }
    let c = x.shape[1]
    for t in [weight, bias, runningMean, runningVar].compactMap({ $0 }) where t.count != c {
        shapeFailure("batchNorm: parameter \(t.shape) for \(c) channels")
    }
    if !training {
        guard let runningMean, let runningVar else { shapeFailure("batchNorm in evaluation mode needs running statistics") }
        let invStd = (runningVar.detach() + eps).rsqrt()
        let scale = weight.map { $0 * invStd } ?? invStd
        let shift = (bias ?? Tensor.zeros([c])) - runningMean.detach() * scale
        return channelAffine(x, scale: scale, shift: shift, relu: relu)
    }
    let n = x.shape[0], inner = x.shape[2...].reduce(1, *)
    let m = n * inner
    guard m > 1 else { shapeFailure("batchNorm in training mode needs more than one value per channel, got \(x.shape)") }
    var mean = [Double](repeating: 0, count: c), invStd = [Float](repeating: 0, count: c)
    var variance = [Double](repeating: 0, count: c)
    var count = Double(m)
    let src = x.data
    if let reducer {
        // Global mean, then the global sum of squared deviations about it.
        var sums = [Double](repeating: 0, count: c + 1)
        sums.withUnsafeMutableBufferPointer { sp in
            Parallel.forRange(c, grain: 1) { channels in
                for ch in channels { sp[ch] = channelSum(src, n: n, c: c, inner: inner, channel: ch) }
            }
            sp[c] = Double(m)
            reducer.sum(sp)
        }
        count = sums[c]
        for ch in 0..<c { mean[ch] = sums[ch] / count }
        var squares = [Double](repeating: 0, count: c)
        squares.withUnsafeMutableBufferPointer { sq in
            Parallel.forRange(c, grain: 1) { channels in
                for ch in channels { sq[ch] = sumOfSquaredDeviations(src, n: n, c: c, inner: inner, channel: ch, mean: Float(mean[ch])) }
            }
            reducer.sum(sq)
        }
        for ch in 0..<c { variance[ch] = squares[ch] / count }
    } else {
        mean.withUnsafeMutableBufferPointer { meanP in
            variance.withUnsafeMutableBufferPointer { varP in
                Parallel.forRange(c, grain: 1) { channels in
                    for ch in channels {
                        let mu = channelSum(src, n: n, c: c, inner: inner, channel: ch) / Double(m)
                        let ss = sumOfSquaredDeviations(src, n: n, c: c, inner: inner, channel: ch, mean: Float(mu))
                        meanP[ch] = mu
                        varP[ch] = ss / Double(m)
                    }
                }
            }
        }
    }
    for ch in 0..<c { invStd[ch] = Float(1 / (variance[ch] + Double(eps)).squareRoot()) }
    // Running statistics (no gradient): new = (1 - momentum) old + momentum batch (unbiased var).
    if let runningMean { for ch in 0..<c { runningMean.data[ch] = (1 - momentum) * runningMean.data[ch] + momentum * Float(mean[ch]) } }
    if let runningVar {
        for ch in 0..<c {
            runningVar.data[ch] = (1 - momentum) * runningVar.data[ch] + momentum * Float(variance[ch] * count / (count - 1))
        }
    }
    let meanF = mean.map { Float($0) }
    let out = Tensor(uninitializedShape: x.shape)
    let dst = out.data, w = weight?.data, bb = bias?.data
    Parallel.forRange(n * c, grain: max(1, 32_768 / max(inner, 1))) { rows in
        for row in rows {
            let ch = row % c
            let a = invStd[ch] * (w.map { $0[ch] } ?? 1)
            let b = (bb.map { $0[ch] } ?? 0) - meanF[ch] * a
            let s = src + row * inner, d = dst + row * inner
            if relu {
                for i in 0..<inner { d[i] = Swift.max(s[i] * a + b, 0) }
            } else {
                for i in 0..<inner { d[i] = s[i] * a + b }
            }
        }
    }
    var inputs = [x]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    return out.recordedSavingOutput(if: relu, relu ? "batch_norm_relu" : "batch_norm", inputs) { g, needs, out in
        if GradMode.isEnabled {
            precondition(reducer == nil, "synchronised batch norm does not support gradients of gradients")
            // A graph of the gradient is wanted: differentiate the composite formula.
            let dims = [0] + Array(2..<x.rank)
            let mu = x.mean(dims: dims, keepDims: true)
            let centered = x - mu
            let rstd = ((centered * centered).mean(dims: dims, keepDims: true) + eps).rsqrt()
            var bshape = [Int](repeating: 1, count: x.rank)
            bshape[1] = c
            var y = centered * rstd
            if let weight { y = y * weight.reshaped(bshape) }
            if let bias { y = y + bias.reshaped(bshape) }
            if relu { y = y.relu() }
            return Autograd.grad(of: [y], wrt: inputs, gradOutputs: [g], createGraph: true)
        }
        return batchNormBackward(g, x, meanF, invStd, weight: weight, hasBias: bias != nil, needs: needs, reluOutput: out,
                                 reducer: reducer, count: count)
    }
}

/// Fused backward of training-mode batch norm (no graph).
private func batchNormBackward(_ g: Tensor, _ x: Tensor, _ mean: [Float], _ invStd: [Float], weight: Tensor?,
                               hasBias: Bool, needs: [Bool], reluOutput: Tensor?, reducer: StatisticsReducer? = nil,
                               count: Double) -> [Tensor?] {
    let n = x.shape[0], c = x.shape[1], inner = x.shape[2...].reduce(1, *)
    let m = Float(count)
    var sumG = [Double](repeating: 0, count: c), sumGXhat = [Double](repeating: 0, count: c)
    // With a fused ReLU the incoming gradient is masked by the output's sign first.
    let masked = reluOutput.map { Elementwise.zip(g, $0, Fn.MaskGradient(slope: 0)) } ?? g
    let gp = masked.data, xp = x.data
    sumG.withUnsafeMutableBufferPointer { sg in
        sumGXhat.withUnsafeMutableBufferPointer { sgx in
            Parallel.forRange(c, grain: 1) { channels in
                for ch in channels {
                    var a = 0.0, b = 0.0
                    let mu = mean[ch]
                    for s in 0..<n {
                        let off = (s * c + ch) * inner
                        a += Reduce.sum(gp + off, inner)
                        var i = 0
                        while i < inner {
                            let end = Swift.min(inner, i + 4096)
                            var part: Float = 0
                            for j in i..<end { part += gp[off + j] * (xp[off + j] - mu) }
                            b += Double(part)
                            i = end
                        }
                    }
                    sg[ch] = a
                    sgx[ch] = b * Double(invStd[ch])
                }
            }
        }
    }
    // Parameter gradients use this process's sums; the input gradient the global ones.
    let localSumG = sumG, localSumGXhat = sumGXhat
    if let reducer, needs[0] {
        var both = sumG + sumGXhat
        both.withUnsafeMutableBufferPointer { reducer.sum($0) }
        sumG = Array(both[0..<c])
        sumGXhat = Array(both[c...])
    }
    var grads: [Tensor?] = []
    if needs[0] {
        let dx = Tensor(uninitializedShape: x.shape)
        let dp = dx.data, w = weight?.data
        Parallel.forRange(n * c, grain: max(1, 32_768 / max(inner, 1))) { rows in
            for row in rows {
                let ch = row % c
                let wv = w.map { $0[ch] } ?? 1
                let k = wv * invStd[ch] / m
                let meanG = Float(sumG[ch]), meanGX = Float(sumGXhat[ch])
                let mu = mean[ch], rs = invStd[ch]
                let off = row * inner
                for i in 0..<inner {
                    let xhat = (xp[off + i] - mu) * rs
                    dp[off + i] = k * (m * gp[off + i] - meanG - xhat * meanGX)
                }
            }
        }
        grads.append(dx)
    } else {
        grads.append(nil)
    }
    if weight != nil { grads.append(needs[grads.count] ? Tensor(localSumGXhat.map { Float($0) }) : nil) }
    if hasBias { grads.append(needs[grads.count] ? Tensor(localSumG.map { Float($0) }) : nil) }
    return grads
}

/// Sum over one channel of all images (Double across images).
private func channelSum(_ src: UnsafeMutablePointer<Float>, n: Int, c: Int, inner: Int, channel ch: Int) -> Double {
    var total = 0.0
    for b in 0..<n { total += Reduce.sum(src + (b * c + ch) * inner, inner) }
    return total
}

/// Sum over one channel of (x - mean)^2: Float blocks of 4096 values, Double across blocks and
/// images (a fixed grouping, so the result does not depend on threads).
private func sumOfSquaredDeviations(_ src: UnsafeMutablePointer<Float>, n: Int, c: Int, inner: Int, channel ch: Int, mean muF: Float) -> Double {
    var ss = 0.0
    for b in 0..<n {
        let p = src + (b * c + ch) * inner
        var acc = 0.0
        var i = 0
        while i < inner {
            let end = Swift.min(inner, i + 4096)
            var part: Float = 0
            for j in i..<end {
                let d = p[j] - muF
                part += d * d
            }
            acc += Double(part)
            i = end
        }
        ss += acc
    }
    return ss
}
