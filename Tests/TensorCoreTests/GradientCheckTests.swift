// Finite-difference checks of every differentiable operator, and second-order checks of the
// operators that R1 and path-length regularisation differentiate twice.
import Testing
import TensorCore
import TestSupport

/// Random normal tensor.
func randn(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    RandomGenerator(seed: seed).normal(shape, std: scale)
}

/// Random values bounded away from 0 (for operators with a kink at 0).
func randnAwayFromZero(_ shape: [Int], seed: UInt64, margin: Float = 0.1) -> Tensor {
    let t = randn(shape, seed: seed)
    for i in 0..<t.count { t.data[i] = t.data[i] >= 0 ? t.data[i] + margin : t.data[i] - margin }
    return t
}

/// Random positive values in [low, low + 1).
func randPositive(_ shape: [Int], seed: UInt64, low: Float = 0.5) -> Tensor {
    RandomGenerator(seed: seed).uniform(shape, low: low, high: low + 1)
}

/// Weighted sum with fixed random weights: a scalar that depends on every output element.
func project(_ y: Tensor, seed: UInt64 = 77) -> Tensor { (y * randn(y.shape, seed: seed)).sum() }

func expectGradients(_ inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 1e-2,
                     sourceLocation: SourceLocation = #_sourceLocation, _ f: @escaping ([Tensor]) -> Tensor) {
    let r = checkGradients(inputs, eps: eps, rtol: rtol, atol: atol) { project(f($0)) }
    #expect(r.failures.isEmpty, "\(r)", sourceLocation: sourceLocation)
}

func expectSecondOrder(_ inputs: [Tensor], eps: Float = 1e-2, sourceLocation: SourceLocation = #_sourceLocation,
                       _ f: @escaping ([Tensor]) -> Tensor) {
    let r = checkSecondOrder(inputs, eps: eps) { project(f($0)) }
    #expect(r.failures.isEmpty, "\(r)", sourceLocation: sourceLocation)
}

@Suite struct ElementwiseGradientTests {
    @Test func broadcastingArithmetic() {
        expectGradients([randn([2, 3, 4], seed: 1), randn([3, 1], seed: 2)]) { $0[0] + $0[1] }
        expectGradients([randn([2, 3, 4], seed: 1), randn([4], seed: 2)]) { $0[0] - $0[1] }
        expectGradients([randn([2, 1, 4], seed: 1), randn([3, 1], seed: 2)]) { $0[0] * $0[1] }
        expectGradients([randn([2, 3], seed: 1), randPositive([2, 3], seed: 2)]) { $0[0] / $0[1] }
        expectGradients([randn([5], seed: 3)]) { 2 - $0[0] * 3 + 1 }
        expectGradients([randPositive([5], seed: 3)]) { 2 / $0[0] }
    }

    @Test func unaryMath() {
        expectGradients([randn([3, 4], seed: 4, scale: 0.5)]) { $0[0].exp() }
        expectGradients([randPositive([3, 4], seed: 5)]) { $0[0].log() }
        expectGradients([randPositive([3, 4], seed: 6)]) { $0[0].sqrt() }
        expectGradients([randPositive([3, 4], seed: 7)]) { $0[0].rsqrt() }
        expectGradients([randnAwayFromZero([3, 4], seed: 8)]) { $0[0].abs() }
        expectGradients([randn([3, 4], seed: 9)]) { $0[0].square() }
        expectGradients([randPositive([3, 4], seed: 10)]) { $0[0].pow(1.7) }
    }

    @Test func activations() {
        expectGradients([randnAwayFromZero([4, 5], seed: 11)]) { $0[0].relu() }
        expectGradients([randnAwayFromZero([4, 5], seed: 12)]) { $0[0].leakyRelu(0.2) }
        expectGradients([randn([4, 5], seed: 13)]) { $0[0].sigmoid() }
        expectGradients([randn([4, 5], seed: 14)]) { $0[0].tanh() }
        expectGradients([randn([4, 5], seed: 15, scale: 3)]) { $0[0].softplus() }
        expectGradients([randnAwayFromZero([4, 5], seed: 16, margin: 0.2)]) { $0[0].clamp(min: -1, max: 1) }
    }

    @Test func whereAndLerp() {
        let condition = Tensor((0..<12).map { Float($0 % 2) }, shape: [3, 4])
        expectGradients([randn([3, 4], seed: 17), randn([3, 4], seed: 18)]) { $0[0].where(condition, else: $0[1]) }
        expectGradients([randn([3, 4], seed: 19), randn([3, 4], seed: 20)]) { lerp($0[0], $0[1], 0.3) }
    }

    @Test func biasActAllActivations() {
        for act in Activation.allCases {
            let x = act.isKinked ? randnAwayFromZero([2, 3, 4], seed: 21, margin: 0.3) : randn([2, 3, 4], seed: 21)
            expectGradients([x, Tensor.zeros([3])]) { biasAct($0[0], bias: $0[1], act: act) }
        }
        expectGradients([randnAwayFromZero([2, 3, 4], seed: 22, margin: 0.3) * 3, Tensor.zeros([3])]) {
            biasAct($0[0], bias: $0[1], act: .lrelu, gain: 1, clamp: 2)
        }
    }
}

extension Activation {
    var isKinked: Bool { self == .relu || self == .lrelu || self == .elu || self == .selu }
}

@Suite struct ReductionAndShapeGradientTests {
    @Test func reductions() {
        expectGradients([randn([2, 3, 4], seed: 30)]) { $0[0].sum(dims: [1]) }
        expectGradients([randn([2, 3, 4], seed: 31)]) { $0[0].sum(dims: [0, 2], keepDims: true) }
        expectGradients([randn([2, 3, 4], seed: 32)]) { $0[0].mean(dims: [2]) }
        expectGradients([randn([2, 3, 4], seed: 33)]) { $0[0].variance(dims: [0, 2]) }
        expectGradients([randn([2, 3, 4], seed: 34)], eps: 1e-3) { $0[0].amax(dims: [2]) }
        expectGradients([randn([2, 3, 4], seed: 35)], eps: 1e-3) { $0[0].amin(dims: [0, 1]) }
    }

    @Test func shapes() {
        expectGradients([randn([2, 3, 4], seed: 40)]) { $0[0].permuted([2, 0, 1]) }
        expectGradients([randn([2, 3, 4], seed: 41)]) { $0[0].reshaped([4, 6]).transposed(0, 1) }
        expectGradients([randn([2, 3, 4], seed: 42), randn([2, 2, 4], seed: 43)]) { concatenate([$0[0], $0[1]], dim: 1) }
        expectGradients([randn([2, 3], seed: 44), randn([2, 3], seed: 45)]) { stack([$0[0], $0[1]], dim: 1) }
        expectGradients([randn([2, 5, 3], seed: 46)]) { $0[0].split(sizes: [2, 3], dim: 1)[1] * 2 }
        expectGradients([randn([2, 5, 3], seed: 47)]) { $0[0].slice(dim: 1, start: 1, end: 4) }
        expectGradients([randn([4, 3], seed: 48)]) { $0[0].indexSelect(dim: 0, [3, 1, 1]) }
        expectGradients([randn([2, 3, 4, 5], seed: 49)]) { $0[0].pad((1, 2, 0, 1)) }
        expectGradients([randn([2, 3, 4, 5], seed: 50)]) { $0[0].pad((-1, 1, 1, -2)) }
        expectGradients([randn([2, 3, 4, 5], seed: 51)]) { $0[0].pad((2, 1, 1, 3), mode: .reflect) }
        expectGradients([randn([2, 3, 4, 5], seed: 52)]) { $0[0].flipped([2, 3]) }
        expectGradients([randn([2, 3, 4, 5], seed: 53)]) { $0[0].broadcastTo([2, 2, 3, 4, 5]) }
    }
}

@Suite struct LayerGradientTests {
    @Test func matmulAllTransposes() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randn(ta ? [4, 3] : [3, 4], seed: 60), b = randn(tb ? [5, 4] : [4, 5], seed: 61)
            expectGradients([a, b]) { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
        }
        expectGradients([randn([2, 3, 4], seed: 62), randn([2, 4, 5], seed: 63)]) { matmul($0[0], $0[1]) }
        expectGradients([randn([3, 4], seed: 64), randn([5, 4], seed: 65), randn([5], seed: 66)]) { linear($0[0], weight: $0[1], bias: $0[2]) }
    }

    @Test func convolutions() {
        expectGradients([randn([2, 4, 7, 6], seed: 70), randn([6, 4, 3, 3], seed: 71), randn([6], seed: 72)]) {
            conv2d($0[0], $0[1], bias: $0[2], stride: 2, padding: 1)
        }
        expectGradients([randn([2, 4, 5, 5], seed: 73), randn([6, 2, 3, 3], seed: 74)]) { conv2d($0[0], $0[1], padding: 1, groups: 2) }
        expectGradients([randn([2, 4, 5, 5], seed: 75), randn([6, 4, 1, 1], seed: 76)]) { conv2d($0[0], $0[1]) }
        expectGradients([randn([1, 6, 4, 5], seed: 77), randn([6, 2, 3, 3], seed: 78)]) {
            convTranspose2d($0[0], $0[1], stride: 2, padding: 1, outputPadding: 1, groups: 2)
        }
    }

    @Test func firAndResampling() {
        let f = FIRFilter.setup([1, 3, 3, 1])
        let asym = FIRFilter(values: [0.1, 0.5, -0.2, 0.3, 0.7, 0.2], shape: [2, 3])
        expectGradients([randn([2, 2, 5, 6], seed: 80)]) { upsample2d($0[0], f) }
        expectGradients([randn([2, 2, 8, 7], seed: 81)]) { downsample2d($0[0], f) }
        expectGradients([randn([1, 2, 5, 6], seed: 82)]) { upfirdn2d($0[0], asym, up: (2, 1), down: (1, 2), padding: (1, 0, -1, 2), flipFilter: true, gain: 2) }
        expectGradients([randn([2, 3, 6, 6], seed: 83), randn([4, 3, 3, 3], seed: 84)]) {
            conv2dResample($0[0], $0[1], filter: f, up: 2, padding: 1, flipWeight: false)
        }
        expectGradients([randn([2, 3, 8, 8], seed: 85), randn([4, 3, 3, 3], seed: 86)]) {
            conv2dResample($0[0], $0[1], filter: f, down: 2, padding: 1)
        }
    }

    @Test func modulatedConvolution() {
        let f = FIRFilter.setup([1, 3, 3, 1])
        for fused in [false, true] {
            expectGradients([randn([2, 3, 4, 4], seed: 90), randn([4, 3, 3, 3], seed: 91), randPositive([2, 3], seed: 92), randn([2, 1, 8, 8], seed: 93)]) {
                modulatedConv2d($0[0], weight: $0[1], styles: $0[2], noise: $0[3], up: 2, padding: 1, resampleFilter: f, flipWeight: false, fusedModconv: fused)
            }
        }
    }

    @Test func pooling() {
        expectGradients([randn([2, 3, 7, 7], seed: 100)]) { $0[0].avgPool2d(kernel: 3, stride: 2, padding: 1) }
        expectGradients([randn([2, 3, 7, 7], seed: 101)]) { $0[0].avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false) }
        expectGradients([randn([2, 3, 8, 8], seed: 102)]) { $0[0].adaptiveAvgPool2d(3) }
        expectGradients([randn([2, 3, 7, 7], seed: 103)], eps: 1e-3) { $0[0].maxPool2d(kernel: 3, stride: 2, padding: 1) }
        expectGradients([randn([2, 3, 8, 8], seed: 104)], eps: 1e-3) { $0[0].adaptiveMaxPool2d(3) }
    }

    @Test func normalisation() {
        let rm = Tensor.zeros([3]), rv = Tensor.ones([3])
        expectGradients([randn([4, 3, 3, 3], seed: 110), randPositive([3], seed: 111), randn([3], seed: 112)], eps: 5e-3) {
            batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: nil, runningVar: nil, training: true)
        }
        expectGradients([randn([4, 3, 3, 3], seed: 113), randPositive([3], seed: 114), randn([3], seed: 115)]) {
            batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: rm, runningVar: rv, training: false)
        }
        expectGradients([randn([4, 6], seed: 116)]) { $0[0].normalized(dim: 1) }
        expectGradients([randn([4, 6], seed: 117)]) { $0[0].l2Norm(dims: [1]) }
        expectGradients([randn([4, 6], seed: 118)]) { normalize2ndMoment($0[0]) }
        let mask = RandomGenerator(seed: 119).bernoulli([4, 6], p: 0.7)
        expectGradients([randn([4, 6], seed: 120)]) { $0[0].dropout(mask: mask, p: 0.3) }
    }

    @Test func softmaxAndLosses() {
        expectGradients([randn([3, 5], seed: 130)]) { $0[0].softmax(dim: 1) }
        expectGradients([randn([3, 5], seed: 131)]) { $0[0].logSoftmax(dim: 0) }
        expectGradients([randn([4, 5], seed: 132)]) { crossEntropy($0[0], labels: [0, 4, 2, 2]) }
        expectGradients([randn([3, 4], seed: 133), randn([3, 4], seed: 134)]) { l1Loss($0[0], $0[1]) }
        expectGradients([randn([3, 4], seed: 135), randn([3, 4], seed: 136)]) { mseLoss($0[0], $0[1]) }
    }

    @Test func interpolationAndGridSampling() {
        expectGradients([randn([2, 2, 5, 7], seed: 140)]) { $0[0].interpolate(size: (9, 4)) }
        expectGradients([randn([2, 2, 12, 12], seed: 141)]) { $0[0].interpolate(size: (5, 7), antialias: true) }
        expectGradients([randn([2, 2, 5, 7], seed: 142)]) { $0[0].interpolate(size: (9, 4), mode: .nearest) }
        let theta = Tensor([0.9, 0.1, 0.05, -0.2, 1.1, -0.1, 1.0, 0.0, 0.1, 0.0, 0.8, 0.2], shape: [2, 2, 3])
        expectGradients([theta]) { affineGrid($0[0], height: 4, width: 5) }
        for padding in [GridPadding.zeros, .border, .reflection] {
            let grid = RandomGenerator(seed: 143).uniform([2, 4, 5, 2], low: -1.15, high: 1.15)
            expectGradients([randn([2, 3, 6, 6], seed: 144), grid], eps: 1e-3) { gridSample($0[0], $0[1], padding: padding) }
        }
    }
}

@Suite struct SecondOrderTests {
    @Test func convolutionsTwice() {
        expectSecondOrder([randn([2, 3, 5, 5], seed: 200), randn([4, 3, 3, 3], seed: 201)]) {
            let y = conv2d($0[0], $0[1], stride: 2, padding: 1)
            return y * y
        }
        expectSecondOrder([randn([1, 4, 3, 3], seed: 202), randn([4, 2, 3, 3], seed: 203)]) {
            let y = convTranspose2d($0[0], $0[1], stride: 2)
            return y * y
        }
        // Second order with respect to the weight as well (inputs[0] is the weight here).
        expectSecondOrder([randn([4, 3, 3, 3], seed: 204), randn([2, 3, 5, 5], seed: 205)]) {
            let y = conv2d($0[1], $0[0], padding: 1)
            return y * y
        }
    }

    @Test func firAndBiasActTwice() {
        let f = FIRFilter.setup([1, 3, 3, 1])
        expectSecondOrder([randn([2, 2, 4, 4], seed: 210)]) { x in
            let y = upsample2d(x[0], f)
            return y * y
        }
        expectSecondOrder([randnAwayFromZero([2, 3, 4], seed: 211, margin: 0.3), randn([3], seed: 212, scale: 0.01)]) { x in
            let y = biasAct(x[0], bias: x[1], act: .lrelu, clamp: 256)
            return y * y
        }
    }

    @Test func gridSampleTwice() {
        let grid = RandomGenerator(seed: 220).uniform([1, 4, 4, 2], low: -0.9, high: 0.9)
        expectSecondOrder([randn([1, 2, 5, 5], seed: 221)]) { x in
            let y = gridSample(x[0], grid)
            return y * y
        }
    }

    @Test func modulatedConvolutionChainTwice() {
        let f = FIRFilter.setup([1, 3, 3, 1])
        // Second order through the demodulation with respect to the styles (path-length style).
        expectSecondOrder([randPositive([2, 3], seed: 230), randn([2, 3, 4, 4], seed: 231), randn([4, 3, 3, 3], seed: 232)]) { x in
            modulatedConv2d(x[1], weight: x[2], styles: x[0], up: 2, padding: 1, resampleFilter: f, flipWeight: false, fusedModconv: false)
        }
        expectSecondOrder([randPositive([2, 3], seed: 233), randn([2, 3, 4, 4], seed: 234), randn([4, 3, 3, 3], seed: 235)]) { x in
            modulatedConv2d(x[1], weight: x[2], styles: x[0], padding: 1, resampleFilter: f, fusedModconv: true)
        }
    }

    @Test func reductionsOfR1AndPathLength() {
        // R1: sum over CHW of squared gradients; path length: sqrt(mean over ws of sums of squares).
        expectSecondOrder([randn([2, 3, 4], seed: 240)]) { x in (x[0].square().sum(dims: [1, 2]) + 1).sqrt() }
        expectSecondOrder([randn([2, 3, 4], seed: 241)]) { x in x[0].square().sum(dims: [2]).mean(dims: [1]).sqrt() }
    }
}
