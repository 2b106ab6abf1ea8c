// StyleGAN2-ADA building blocks (training/networks.py, spec stylegan2.md and ops.md section 7):
// equalized-learning-rate FullyConnectedLayer and Conv2dLayer, the modulated SynthesisLayer,
// ToRGBLayer, and the minibatch standard-deviation layer. Parameter and buffer names and
// their registration order are the reference's, so converted state dicts load unchanged.
import NN
import TensorCore

/// How synthesis layers add noise.
public enum NoiseMode {
    /// Fresh N(0, 1) noise per sample, drawn from the generator (training).
    case random(RandomGenerator)
    /// Fresh noise drawn from each sample's own generator, so a sample's noise does not depend
    /// on the batch it is computed in (VisCoIN's data parallelism).
    case perSample([RandomGenerator])
    /// The stored `noise_const` buffers (evaluation, reproducible images).
    case const
    case none
}

/// The [1,3,3,1] resample filter buffer every StyleGAN2 layer registers.
func resampleFilterBuffer() -> Tensor { FIRFilter.setup([1, 3, 3, 1]).tensor }

/// FullyConnectedLayer: weight [out, in] ~ N(0,1)/lr, bias = bias_init; runtime gains
/// lr/sqrt(in) and lr.
public final class FullyConnectedLayer: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let activation: Activation
    public let weightGain: Float
    public let biasGain: Float

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, activation: Activation = .linear,
                lrMultiplier: Float = 1, biasInit: Float = 0, generator: RandomGenerator) {
        weight = generator.normal([outFeatures, inFeatures], std: 1 / lrMultiplier)
        self.bias = bias ? Tensor.full([outFeatures], biasInit) : nil
        self.activation = activation
        weightGain = lrMultiplier / Float(inFeatures).squareRoot()
        biasGain = lrMultiplier
        super.init()
        parameter("weight", weight)
        if let b = self.bias { parameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let w = weight * weightGain
        let b = bias.map { biasGain == 1 ? $0 : $0 * biasGain }
        if activation == .linear, let b {
            return linear(x, weight: w, bias: b)
        }
        return biasAct(linear(x, weight: w), bias: b, act: activation)
    }
}

/// Conv2dLayer: weight [out, in, k, k] ~ N(0,1) with runtime gain 1/sqrt(in k k), optional
/// up/downsampling with the FIR filter, bias_act with the call-time gain folded into the
/// activation gain and the clamp. `trainable: false` (Freeze-D) stores weight and bias as buffers.
public final class Conv2dLayer: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let activation: Activation
    public let up: Int
    public let down: Int
    public let convClamp: Float?
    public let weightGain: Float
    public let padding: Int
    let filter = FIRFilter.setup([1, 3, 3, 1])

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, bias: Bool = true, activation: Activation = .linear,
                up: Int = 1, down: Int = 1, convClamp: Float? = nil, trainable: Bool = true, generator: RandomGenerator) {
        weight = generator.normal([outChannels, inChannels, kernel, kernel])
        self.bias = bias ? Tensor.zeros([outChannels]) : nil
        self.activation = activation
        self.up = up
        self.down = down
        self.convClamp = convClamp
        weightGain = 1 / Float(inChannels * kernel * kernel).squareRoot()
        padding = kernel / 2
        super.init()
        if trainable {
            parameter("weight", weight)
            if let b = self.bias { parameter("bias", b) }
            buffer("resample_filter", resampleFilterBuffer())
        } else {
            buffer("resample_filter", resampleFilterBuffer())
            buffer("weight", weight)
            if let b = self.bias { buffer("bias", b) }
        }
    }

    public func callAsFunction(_ x: Tensor, gain: Float = 1) -> Tensor {
        let w = weight * weightGain
        let y = conv2dResample(x, w, filter: filter, up: up, down: down, padding: padding, flipWeight: up == 1)
        return biasAct(y, bias: bias, act: activation, gain: activation.defaultGain * gain, clamp: convClamp.map { $0 * gain })
    }
}

/// SynthesisLayer: styles from `affine`, modulated (demodulated) 3x3 convolution, noise,
/// bias and lrelu with clamp.
public final class SynthesisLayer: Module {
    public let affine: FullyConnectedLayer
    public let weight: Tensor
    public let noiseStrength: Tensor?
    public let bias: Tensor
    public let noiseConst: Tensor?
    public let up: Int
    public let resolution: Int
    public let convClamp: Float?
    let filter = FIRFilter.setup([1, 3, 3, 1])

    public init(_ inChannels: Int, _ outChannels: Int, wDim: Int, resolution: Int, kernel: Int = 3, up: Int = 1,
                useNoise: Bool = true, convClamp: Float? = nil, generator: RandomGenerator) {
        affine = FullyConnectedLayer(wDim, inChannels, biasInit: 1, generator: generator)
        weight = generator.normal([outChannels, inChannels, kernel, kernel])
        noiseConst = useNoise ? generator.normal([resolution, resolution]) : nil
        noiseStrength = useNoise ? Tensor.zeros([]) : nil
        bias = Tensor.zeros([outChannels])
        self.up = up
        self.resolution = resolution
        self.convClamp = convClamp
        super.init()
        parameter("weight", weight)
        if let n = noiseStrength { parameter("noise_strength", n) }
        parameter("bias", bias)
        buffer("resample_filter", resampleFilterBuffer())
        if let n = noiseConst { buffer("noise_const", n) }
        child("affine", affine)
    }

    /// Fused and non-fused modulated convolution compute the same function (spec ops.md 6); the
    /// reference picks non-fused in training. When `fusedModconv` is nil we choose per layer:
    /// fused (per-sample weights, no style-scaled copy of the activations and no separate
    /// demodulation pass) when the per-sample weights are smaller than the activations.
    public func prefersFusedModconv(inputPixels: Int) -> Bool {
        let outputPixels = inputPixels * up * up
        return outputPixels >= weight.shape[1] * weight.shape[2] * weight.shape[3]
    }

    public func callAsFunction(_ x: Tensor, _ w: Tensor, noise noiseMode: NoiseMode, fusedModconv: Bool?, gain: Float = 1) -> Tensor {
        let fusedModconv = fusedModconv ?? prefersFusedModconv(inputPixels: x.shape[2] * x.shape[3])
        let styles = affine(w)
        var noise: Tensor? = nil
        if let strength = noiseStrength, let noiseConst {
            switch noiseMode {
            case .random(let generator): noise = generator.normal([x.shape[0], 1, resolution, resolution]) * strength
            case .perSample(let generators):
                precondition(generators.count == x.shape[0], "per-sample noise needs one generator per sample")
                noise = concatenate(generators.map { $0.normal([1, 1, resolution, resolution]) }, dim: 0) * strength
            case .const: noise = noiseConst * strength
            case .none: noise = nil
            }
        }
        let y = modulatedConv2d(x, weight: weight, styles: styles, noise: noise, up: up, padding: weight.shape[2] / 2,
                                resampleFilter: filter, flipWeight: up == 1, fusedModconv: fusedModconv)
        return biasAct(y, bias: bias, act: .lrelu, gain: Activation.lrelu.defaultGain * gain, clamp: convClamp.map { $0 * gain })
    }
}

/// ToRGBLayer: modulated 1x1 convolution without demodulation, linear bias_act with clamp.
public final class ToRGBLayer: Module {
    public let affine: FullyConnectedLayer
    public let weight: Tensor
    public let bias: Tensor
    public let convClamp: Float?
    public let weightGain: Float

    public init(_ inChannels: Int, _ outChannels: Int, wDim: Int, kernel: Int = 1, convClamp: Float? = nil, generator: RandomGenerator) {
        affine = FullyConnectedLayer(wDim, inChannels, biasInit: 1, generator: generator)
        weight = generator.normal([outChannels, inChannels, kernel, kernel])
        bias = Tensor.zeros([outChannels])
        self.convClamp = convClamp
        weightGain = 1 / Float(inChannels * kernel * kernel).squareRoot()
        super.init()
        parameter("weight", weight)
        parameter("bias", bias)
        child("affine", affine)
    }

    public func callAsFunction(_ x: Tensor, _ w: Tensor, fusedModconv: Bool?) -> Tensor {
        // nil: fused when the per-sample weights are smaller than the activations (see SynthesisLayer).
        let fusedModconv = fusedModconv ?? (x.shape[2] * x.shape[3] >= weight.shape[1])
        let styles = affine(w) * weightGain
        let y = modulatedConv2d(x, weight: weight, styles: styles, demodulate: false, fusedModconv: fusedModconv)
        return biasAct(y, bias: bias, act: .linear, clamp: convClamp)
    }
}

/// Minibatch standard deviation over strided groups (spec ops.md section 9).
public struct MinibatchStdLayer {
    public var groupSize: Int?
    public var numChannels: Int

    public init(groupSize: Int?, numChannels: Int = 1) {
        self.groupSize = groupSize
        self.numChannels = numChannels
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let g = groupSize.map { Swift.min($0, n) } ?? n
        guard n % g == 0 else { shapeFailure("minibatch-std: batch \(n) is not divisible by the group size \(g)") }
        let f = numChannels
        let groups = n / g
        var y = x.reshaped([g, groups, f, c / f, h, w])
        y = y - y.mean(dims: [0], keepDims: true)
        y = y.square().mean(dims: [0])          // [n, F, c, H, W]
        y = (y + 1e-8).sqrt()
        y = y.mean(dims: [2, 3, 4])              // [n, F]
        y = y.reshaped([1, groups, f, 1, 1]).broadcastTo([g, groups, f, h, w]).reshaped([n, f, h, w])
        return concatenate([x, y], dim: 1)
    }
}
