// The VisCoIN modules (spec viscoin.md sections 2-4): concept extractor Psi, explainer Theta
// (optionally weight-normalised), the adapted mapping network (one FC per style, fed by the
// concept maps Phi or the extra information Phi') and the adapted generator that shares a
// pretrained synthesis network.
import NN
import TensorCore

/// Psi: hidden states h2, h3, h4 of the classifier -> concepts Phi [N, K, 3, 3] (>= 0) and the
/// extra information Phi' [N, 9K] (>= 0).
public final class ConceptExtractor: Module {
    public let conv1, conv2, conv3, conv4, conv5: Conv2d
    public let linear1: Linear
    public let linear2: Linear
    public let nConcepts: Int

    public init(nConcepts: Int = 256, latentChannels: Int = 512, inputChannels: (Int, Int, Int) = (512, 1024, 2048),
                generator: RandomGenerator) {
        self.nConcepts = nConcepts
        conv1 = Conv2d(inputChannels.0, latentChannels, kernel: 5, stride: 4, padding: 2, generator: generator)
        conv2 = Conv2d(inputChannels.1, latentChannels, kernel: 3, stride: 2, padding: 1, generator: generator)
        conv3 = Conv2d(inputChannels.2, latentChannels, kernel: 3, stride: 1, padding: 1, generator: generator)
        conv4 = Conv2d(3 * latentChannels, 3 * latentChannels, kernel: 3, padding: 1, generator: generator)
        conv5 = Conv2d(3 * latentChannels, nConcepts, kernel: 1, generator: generator)
        linear1 = Linear(3 * latentChannels * 9, 9 * nConcepts, generator: generator)
        linear2 = Linear(9 * nConcepts, 9 * nConcepts, bias: false, generator: generator)
        super.init()
        for (name, c) in [("conv1", conv1), ("conv2", conv2), ("conv3", conv3), ("conv4", conv4), ("conv5", conv5)] { child(name, c) }
        child("linear1", linear1)
        child("linear2", linear2)
    }

    /// `hidden`: the classifier's hidden_states[-3:] (stages 2, 3, 4 outputs).
    public func callAsFunction(_ h2: Tensor, _ h3: Tensor, _ h4: Tensor) -> (phi: Tensor, phiPrime: Tensor) {
        let merged = concatenate([conv1(h2).relu(), conv2(h3).relu(), conv3(h4).relu()], dim: 1)
        let u = conv4(merged).relu()
        let phi = conv5(u).relu().adaptiveAvgPool2d(3)
        let extra = u.adaptiveAvgPool2d(3).flattened(from: 1)
        let phiPrime = linear2(linear1(extra).relu()).relu()
        return (phi, phiPrime)
    }
}

/// Theta: dropout(0.01) on Phi (training), max over the 3x3 map, linear layer.
/// `normalized` stores the weight as `linear.parametrizations.weight.original0/1` (g, v).
public final class Explainer: Module {
    /// The `linear` child: plain weight/bias, or bias plus the weight-norm parametrization.
    public final class Head: Module {
        public let bias: Tensor
        public let weight: Tensor?
        public let g: Tensor?
        public let v: Tensor?

        init(nConcepts: Int, nClasses: Int, normalized: Bool, generator: RandomGenerator) {
            let plain = Linear(nConcepts, nClasses, generator: generator)
            bias = plain.bias!
            if normalized {
                // weight_norm(dim=0) initialises g = ||v||_row and v = the original weight.
                v = plain.weight
                g = plain.weight.l2Norm(dims: [1], keepDims: true).detach().copy()
                weight = nil
            } else {
                weight = plain.weight
                g = nil
                v = nil
            }
            super.init()
            if let weight {
                parameter("weight", weight)
                parameter("bias", bias)
            } else {
                parameter("bias", bias)
                let weightModule = Module()
                weightModule.parameter("original0", g!)
                weightModule.parameter("original1", v!)
                let parametrizations = Module()
                parametrizations.child("weight", weightModule)
                child("parametrizations", parametrizations)
            }
        }

        /// The effective weight [classes, concepts].
        public var effectiveWeight: Tensor {
            if let weight { return weight }
            return g! * v! / v!.l2Norm(dims: [1], keepDims: true)
        }

        func callAsFunction(_ x: Tensor) -> Tensor { TensorCore.linear(x, weight: effectiveWeight, bias: bias) }
    }

    public let linear: Head
    public let dropoutProbability: Float = 0.01

    public init(nConcepts: Int = 256, nClasses: Int, normalized: Bool = false, generator: RandomGenerator) {
        linear = Head(nConcepts: nConcepts, nClasses: nClasses, normalized: normalized, generator: generator)
        super.init()
        child("linear", linear)
    }

    /// Logits. In training mode a dropout mask is drawn from `generator` unless `dropoutMask` (1 = kept) is given.
    public func callAsFunction(_ phi: Tensor, generator: RandomGenerator? = nil, dropoutMask: Tensor? = nil) -> Tensor {
        var x = phi
        if isTraining {
            if let dropoutMask { x = x.dropout(mask: dropoutMask, p: dropoutProbability) }
            else if let generator { x = x.dropout(dropoutProbability, training: true, generator: generator) }
        }
        return linear(x.adaptiveMaxPool2d(1).flattened(from: 1))
    }

    /// Weight of class `c` for every concept (effective weight row).
    public var weight: Tensor { linear.effectiveWeight }
}

/// MappingNetworkAdapted: `fixed_w_avg` (trainable) and one sequence `s{i}` of FC layers per
/// style index; index i reads z2 (Phi') when i < coarse or i > mid, else z1 (Phi).
public final class MappingNetworkAdapted: Module {
    public let fixedWAvg: Tensor
    public let styles: [ModuleList<FullyConnectedLayer>]
    public let numWs: Int
    public let coarseLayer: Int
    public let midLayer: Int

    public init(z1Dim: Int, z2Dim: Int, wDim: Int, numWs: Int, numLayers: Int = 1, coarseLayer: Int = 2, midLayer: Int = 10,
                lrMultiplier: Float = 0.01, generator: RandomGenerator) {
        fixedWAvg = Tensor.zeros([wDim])
        self.numWs = numWs
        self.coarseLayer = coarseLayer
        self.midLayer = midLayer
        var list: [ModuleList<FullyConnectedLayer>] = []
        for i in 0..<numWs {
            let inDim = (i < coarseLayer || i > midLayer) ? z2Dim : z1Dim
            let features = [inDim] + [Int](repeating: wDim, count: numLayers)
            list.append(ModuleList((0..<numLayers).map { l in
                FullyConnectedLayer(features[l], features[l + 1], activation: .lrelu, lrMultiplier: lrMultiplier, generator: generator)
            }))
        }
        styles = list
        super.init()
        parameter("fixed_w_avg", fixedWAvg)
        for (i, s) in list.enumerated() { child("s\(i)", s) }
    }

    /// ws [N, numWs, wDim] from Phi (flattened channel-major) and Phi'.
    public func callAsFunction(_ z1: Tensor, _ z2: Tensor) -> Tensor {
        let a1 = normalize2ndMoment(z1.rank > 2 ? z1.flattened(from: 1) : z1)
        let a2 = normalize2ndMoment(z2)
        var ws: [Tensor] = []
        for (i, s) in styles.enumerated() {
            var x = (i < coarseLayer || i > midLayer) ? a2 : a1
            for layer in s.items { x = layer(x) }
            ws.append(x)
        }
        return stack(ws, dim: 1) + fixedWAvg
    }
}

/// GeneratorAdapted: the adapted mapping and a (shared, pretrained) synthesis network.
public final class GeneratorAdapted: Module {
    public let mapping: MappingNetworkAdapted
    public private(set) var synthesis: SynthesisNetwork
    /// Concept count K of the inputs (z1 = Phi [N, K, 3, 3], z2 = Phi' [N, 9K]).
    public let zDim: Int
    /// The synthesis network's configuration (its mapping fields unused).
    public let synthesisConfig: StyleGAN2Config

    /// Builds the adapted generator around `synthesis` (shared with the pretrained generator).
    /// `fixedWAvg`: initial value of `mapping.fixed_w_avg` (DECISIONS B12: the pretrained
    /// generator's w_avg by default; zeros reproduce the original).
    public init(synthesis: SynthesisNetwork, zDim: Int = 256, wDim: Int, numLayers: Int = 1, coarseLayer: Int = 2,
                midLayer: Int = 10, fixedWAvg: Tensor? = nil, generator: RandomGenerator) {
        self.synthesis = synthesis
        self.zDim = zDim
        synthesisConfig = synthesis.config
        mapping = MappingNetworkAdapted(z1Dim: 9 * zDim, z2Dim: 9 * zDim, wDim: wDim, numWs: synthesis.numWs, numLayers: numLayers,
                                        coarseLayer: coarseLayer, midLayer: midLayer, generator: generator)
        if let fixedWAvg { mapping.fixedWAvg.assign(fixedWAvg) }
        super.init()
        child("synthesis", synthesis)
        child("mapping", mapping)
    }

    /// VisCoIN's `from_gan`: shares `gan.synthesis`; fixed_w_avg from `gan.mapping.w_avg` unless `zeroWAvg`.
    public convenience init(fromGAN gan: Generator, zDim: Int = 256, zeroWAvg: Bool = false, generator: RandomGenerator) {
        self.init(synthesis: gan.synthesis, zDim: zDim, wDim: gan.config.wDim, fixedWAvg: zeroWAvg ? nil : gan.mapping.wAvg.copy(),
                  generator: generator)
    }

    public func callAsFunction(_ z1: Tensor, _ z2: Tensor, noise: NoiseMode, fusedModconv: Bool? = nil) -> (image: Tensor, ws: Tensor) {
        let ws = mapping(z1, z2)
        return (synthesis(ws, noise: noise, fusedModconv: fusedModconv), ws)
    }
}
