// bias_act (StyleGAN2-ADA torch_utils.ops.bias_act, spec ops.md section 3):
// y = clamp(act(x + b) * gain, -clamp, clamp). Linear, relu and lrelu run fused in one pass;
// their gradient is a mask chosen by the sign of the output (and the clamp), written as the
// `biasActGradient` primitive whose own gradient is the same mask (these activations are
// piecewise linear). Other activations are composed from differentiable operations.
#if canImport(Glibc)
import Glibc
#endif

public enum Activation: String, Sendable, CaseIterable {
    case linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish

    public var defaultAlpha: Float { self == .lrelu ? 0.2 : 0 }
    public var defaultGain: Float {
        switch self {
        case .relu, .lrelu, .swish: return Float(2.0.squareRoot())
        default: return 1
        }
    }
    var isPiecewiseLinear: Bool { self == .linear || self == .relu || self == .lrelu }
}

/// Element index -> channel index along `dim` for a tensor of `shape`.
private func channelLayout(_ shape: [Int], dim: Int) -> (channels: Int, inner: Int) {
    let d = normalizeDim(dim, rank: shape.count)
    return (shape[d], shape[(d + 1)...].reduce(1, *))
}

/// bias_act with defaults from the activation (alpha, gain); `clamp` nil disables clamping.
public func biasAct(_ x: Tensor, bias: Tensor? = nil, dim: Int = 1, act: Activation = .linear,
                    alpha: Float? = nil, gain: Float? = nil, clamp: Float? = nil) -> Tensor {
    let alpha = alpha ?? act.defaultAlpha
    let gain = gain ?? act.defaultGain
    let limit = clamp ?? .infinity
    let (channels, inner) = channelLayout(x.shape, dim: dim)
    if let bias, bias.count != channels { shapeFailure("bias_act: bias \(bias.shape) for \(channels) channels of \(x.shape)") }
    guard act.isPiecewiseLinear else {
        var y = x
        if let bias {
            var bshape = [Int](repeating: 1, count: x.rank)
            bshape[normalizeDim(dim, rank: x.rank)] = channels
            y = y + bias.reshaped(bshape)
        }
        switch act {
        case .tanh: y = y.tanh()
        case .sigmoid: y = y.sigmoid()
        case .softplus: y = y.softplus()
        case .swish: y = y * y.sigmoid()
        case .elu: y = y.relu() + (y.clamp(max: 0).exp() - 1)
        case .selu: y = (y.relu() + (y.clamp(max: 0).exp() - 1) * 1.6732632423543772) * 1.0507009873554805
        default: break
        }
        if gain != 1 { y = y * gain }
        if clamp != nil { y = y.clamp(min: -limit, max: limit) }
        return y
    }
    let out = Tensor(uninitializedShape: x.shape)
    let src = x.data, dst = out.data
    let b = bias?.data
    let slope: Float = act == .linear ? 1 : (act == .relu ? 0 : alpha)
    Parallel.forRange(x.count / max(inner, 1), grain: max(1, 32_768 / max(inner, 1))) { rows in
        for row in rows {
            let bv = b.map { $0[row % channels] } ?? 0
            let s = src + row * inner, d = dst + row * inner
            for i in 0..<inner {
                let v = s[i] + bv
                let a = v > 0 ? v : v * slope
                d[i] = Swift.min(Swift.max(a * gain, -limit), limit)
            }
        }
    }
    var inputs = [x]
    if let bias { inputs.append(bias) }
    return out.recordedWithOutput("bias_act", inputs) { g, needs, out in
        let dx = biasActGradient(g, output: out, slope: slope, gain: gain, clamp: limit)
        var grads: [Tensor?] = [dx]
        if bias != nil {
            let d = normalizeDim(dim, rank: x.rank)
            grads.append(needs[1] ? dx.sum(dims: (0..<x.rank).filter { $0 != d }) : nil)
        }
        return grads
    }
}

/// g * gain * (1 if y > 0 else slope), zeroed where |y| reached the clamp. Linear in g.
func biasActGradient(_ g: Tensor, output y: Tensor, slope: Float, gain: Float, clamp: Float) -> Tensor {
    let out = Elementwise.zip(g, y, Fn.BiasActGradient(gain: gain, negativeGain: gain * slope, clamp: clamp))
    return out.recorded("bias_act_gradient", [g]) { gg, _ in
        [biasActGradient(gg, output: y, slope: slope, gain: gain, clamp: clamp)]
    }
}
