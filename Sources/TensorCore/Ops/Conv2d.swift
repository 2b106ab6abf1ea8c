// 2-D convolution (PyTorch conv2d: correlation, stride, symmetric zero padding, groups) and
// transposed convolution, as three primitives that are each other's gradients:
//   conv2d(x, w)               -> y
//   conv2dInputGrad(gy, w)     -> dx   (= transposed convolution)
//   conv2dWeightGrad(x, gy)    -> dw
// All three are bilinear, so every derivative of any order is again one of them.

/// y = conv2d(x, w) (+ bias). x [N, C, H, W], w [O, C/groups, kh, kw].
public func conv2d(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, groups: Int = 1) -> Tensor {
    conv2d(x, w, bias: bias, stride: (stride, stride), padding: (padding, padding), groups: groups)
}

public func conv2d(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil, stride: (Int, Int), padding: (Int, Int), groups: Int = 1) -> Tensor {
    let geometry = ConvGeometry(input: x.shape, weight: w.shape, stride: stride, padding: padding, groups: groups)
    let y = conv2dPrimitive(x, w, geometry)
    guard let bias else { return y }
    guard bias.count == geometry.o else { shapeFailure("conv2d bias \(bias.shape) for \(geometry.o) output channels") }
    return y + bias.reshaped([1, geometry.o, 1, 1])
}

func conv2dPrimitive(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry) -> Tensor {
    let y = Tensor(uninitializedShape: g.outputShape)
    ConvKernels.forward(x: x.data, w: w.data, y: y.data, g)
    // Bilinear: each input is kept only for the other one's gradient.
    return y.recorded("conv2d", [x, w], weightInput: 1) { [keptX = w.requiresGrad ? x : nil, keptW = x.requiresGrad ? w : nil] gy, needs in
        [needs[0] ? conv2dInputGrad(gy, keptW!, g) : nil, needs[1] ? conv2dWeightGrad(keptX!, gy, g) : nil]
    }
}

/// dx = conv2d^T(gy, w) for the geometry `g` (its input shape is the result's shape).
func conv2dInputGrad(_ gy: Tensor, _ w: Tensor, _ g: ConvGeometry) -> Tensor {
    guard gy.shape == g.outputShape, w.shape == g.weightShape else {
        shapeFailure("transposed convolution of \(gy.shape) with \(w.shape), expected \(g.outputShape) and \(g.weightShape)")
    }
    let gx = Tensor(uninitializedShape: g.inputShape)
    ConvKernels.inputGrad(gy: gy.data, w: w.data, gx: gx.data, g)
    return gx.recorded("conv2d_input_grad", [gy, w]) { [keptGy = w.requiresGrad ? gy : nil, keptW = gy.requiresGrad ? w : nil] h, needs in
        [needs[0] ? conv2dPrimitive(h, keptW!, g) : nil, needs[1] ? conv2dWeightGrad(h, keptGy!, g) : nil]
    }
}

/// dw = sum over the batch of gy (x) unfold(x).
func conv2dWeightGrad(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry) -> Tensor {
    let gw = Tensor(uninitializedShape: g.weightShape)
    ConvKernels.weightGrad(x: x.data, gy: gy.data, gw: gw.data, g)
    return gw.recorded("conv2d_weight_grad", [x, gy]) { [keptX = gy.requiresGrad ? x : nil, keptGy = x.requiresGrad ? gy : nil] h, needs in
        [needs[0] ? conv2dInputGrad(keptGy!, h, g) : nil, needs[1] ? conv2dPrimitive(keptX!, h, g) : nil]
    }
}

/// PyTorch conv_transpose2d: x [N, Cin, H, W], w [Cin, Cout/groups, kh, kw];
/// output [N, Cout, (H-1)s - 2p + kh + outputPadding, ...].
public func convTranspose2d(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
                            outputPadding: Int = 0, groups: Int = 1) -> Tensor {
    convTranspose2d(x, w, bias: bias, stride: (stride, stride), padding: (padding, padding),
                    outputPadding: (outputPadding, outputPadding), groups: groups)
}

public func convTranspose2d(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil, stride: (Int, Int), padding: (Int, Int),
                            outputPadding: (Int, Int) = (0, 0), groups: Int = 1) -> Tensor {
    guard x.rank == 4, w.rank == 4, x.shape[1] == w.shape[0] else { shapeFailure("conv_transpose2d of \(x.shape) with weight \(w.shape)") }
    let cout = w.shape[1] * groups
    let oh = (x.shape[2] - 1) * stride.0 - 2 * padding.0 + w.shape[2] + outputPadding.0
    let ow = (x.shape[3] - 1) * stride.1 - 2 * padding.1 + w.shape[3] + outputPadding.1
    let g = ConvGeometry(input: [x.shape[0], cout, oh, ow], weight: w.shape, stride: stride, padding: padding, groups: groups)
    guard g.oh == x.shape[2], g.ow == x.shape[3] else { shapeFailure("conv_transpose2d: output padding \(outputPadding) must be smaller than the stride") }
    let y = conv2dInputGrad(x, w, g)
    guard let bias else { return y }
    return y + bias.reshaped([1, cout, 1, 1])
}

/// The input gradient of `conv2d(x, w, stride, padding, groups)` for an input of `inputShape`
/// (a transposed convolution). Differentiable.
public func conv2dBackwardInput(_ gradOutput: Tensor, weight: Tensor, inputShape: [Int], stride: (Int, Int) = (1, 1),
                                padding: (Int, Int) = (0, 0), groups: Int = 1) -> Tensor {
    conv2dInputGrad(gradOutput, weight, ConvGeometry(input: inputShape, weight: weight.shape, stride: stride, padding: padding, groups: groups))
}

/// The weight gradient of `conv2d(x, w, stride, padding, groups)` for a weight of
/// `weightShape`. Differentiable.
public func conv2dBackwardWeight(_ input: Tensor, gradOutput: Tensor, weightShape: [Int], stride: (Int, Int) = (1, 1),
                                 padding: (Int, Int) = (0, 0), groups: Int = 1) -> Tensor {
    conv2dWeightGrad(input, gradOutput, ConvGeometry(input: input.shape, weight: weightShape, stride: stride, padding: padding, groups: groups))
}
