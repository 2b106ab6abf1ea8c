// StyleGAN2 modulated convolution (spec ops.md section 6), composed from differentiable
// operations so that the path-length regulariser can differentiate through the demodulation.
// Non-fused (training): scale activations by the styles, one shared convolution, then
// demodulate and add noise. Fused (evaluation): per-sample weights in a grouped convolution.

public func modulatedConv2d(_ x: Tensor, weight: Tensor, styles: Tensor, noise: Tensor? = nil, up: Int = 1, down: Int = 1,
                            padding: Int = 0, resampleFilter: FIRFilter? = nil, demodulate: Bool = true,
                            flipWeight: Bool = true, fusedModconv: Bool = true) -> Tensor {
    let batch = x.shape[0]
    let outChannels = weight.shape[0], inChannels = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
    guard styles.shape == [batch, inChannels] else { shapeFailure("modulated_conv2d: styles \(styles.shape), expected [\(batch), \(inChannels)]") }
    var w: Tensor? = nil
    var dcoefs: Tensor? = nil
    if fusedModconv {
        w = weight.unsqueezed(0) * styles.reshaped([batch, 1, inChannels, 1, 1])  // [N, O, I, kh, kw]
    }
    if demodulate {
        // sum_{i,a,b} (weight[o,i,a,b] styles[n,i])^2 = sum_i styles[n,i]^2 sum_{a,b} weight[o,i,a,b]^2:
        // a [N, I] x [I, O] product instead of materialising the [N, O, I, kh, kw] weights.
        let weightEnergy = weight.square().sum(dims: [2, 3])  // [O, I]
        dcoefs = (matmul(styles.square(), weightEnergy, transposeB: true) + 1e-8).rsqrt()  // [N, O]
    }
    if demodulate && fusedModconv {
        w = w! * dcoefs!.reshaped([batch, outChannels, 1, 1, 1])
    }
    if !fusedModconv {
        var y = x * styles.reshaped([batch, inChannels, 1, 1])
        y = conv2dResample(y, weight, filter: resampleFilter, up: up, down: down, padding: padding, flipWeight: flipWeight)
        if demodulate, let noise {
            return y.fma(dcoefs!.reshaped([batch, outChannels, 1, 1]), noise)
        } else if demodulate {
            return y * dcoefs!.reshaped([batch, outChannels, 1, 1])
        } else if let noise {
            return y + noise
        }
        return y
    }
    var y = x.reshaped([1, batch * inChannels, x.shape[2], x.shape[3]])
    let grouped = w!.reshaped([batch * outChannels, inChannels, kh, kw])
    y = conv2dResample(y, grouped, filter: resampleFilter, up: up, down: down, padding: padding, groups: batch, flipWeight: flipWeight)
    y = y.reshaped([batch, outChannels, y.shape[2], y.shape[3]])
    if let noise { y = y + noise }
    return y
}
