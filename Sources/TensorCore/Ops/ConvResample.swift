// conv2d_resample (StyleGAN2-ADA torch_utils.ops.conv2d_resample, spec ops.md section 5):
// 2-D convolution fused with FIR up/downsampling, with the same fast paths as the reference
// so that results match it to float rounding. `flipWeight` true means correlation (PyTorch
// convention); layers that upsample pass false (true convolution).

/// Padding `[x0, x1, y0, y1]`.
public typealias Padding4 = (x0: Int, x1: Int, y0: Int, y1: Int)

/// Applies `w` [O, I/groups, kh, kw] with the reference's weight-flip convention.
private func conv2dWrapper(_ x: Tensor, _ w: Tensor, stride: Int = 1, padding: (Int, Int) = (0, 0), groups: Int = 1,
                           transpose: Bool = false, flipWeight: Bool = true) -> Tensor {
    let weight = flipWeight ? w : w.flipped([2, 3])
    if transpose {
        return convTranspose2d(x, weight, stride: (stride, stride), padding: padding, groups: groups)
    }
    return conv2d(x, weight, stride: (stride, stride), padding: padding, groups: groups)
}

public func conv2dResample(_ x: Tensor, _ w: Tensor, filter f: FIRFilter? = nil, up: Int = 1, down: Int = 1,
                           padding: Padding4 = (0, 0, 0, 0), groups: Int = 1, flipWeight: Bool = true,
                           flipFilter: Bool = false) -> Tensor {
    guard w.rank == 4 else { shapeFailure("conv2d_resample weight must be 4-D, got \(w.shape)") }
    let outChannels = w.shape[0], inPerGroup = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    let identity = FIRFilter(values: [1], shape: [1, 1])
    let fw = f?.width ?? 1, fh = f?.height ?? 1
    var (px0, px1, py0, py1) = padding
    if up > 1 {
        px0 += (fw + up - 1) / 2; px1 += (fw - up) / 2
        py0 += (fh + up - 1) / 2; py1 += (fh - up) / 2
    }
    if down > 1 {
        px0 += (fw - down + 1) / 2; px1 += (fw - down) / 2
        py0 += (fh - down + 1) / 2; py1 += (fh - down) / 2
    }
    let filter = f ?? identity
    // 1x1 kernel, downsampling only: downsample first, then convolve.
    if kw == 1 && kh == 1 && down > 1 && up == 1 {
        let t = upfirdn2d(x, filter, down: (down, down), padding: (px0, px1, py0, py1), flipFilter: flipFilter)
        return conv2dWrapper(t, w, groups: groups, flipWeight: flipWeight)
    }
    // 1x1 kernel, upsampling only: convolve first, then upsample.
    if kw == 1 && kh == 1 && up > 1 && down == 1 {
        let t = conv2dWrapper(x, w, groups: groups, flipWeight: flipWeight)
        return upfirdn2d(t, filter, up: (up, up), padding: (px0, px1, py0, py1), flipFilter: flipFilter, gain: Float(up * up))
    }
    // Downsampling only: filter, then strided convolution.
    if down > 1 && up == 1 {
        let t = upfirdn2d(x, filter, padding: (px0, px1, py0, py1), flipFilter: flipFilter)
        return conv2dWrapper(t, w, stride: down, groups: groups, flipWeight: flipWeight)
    }
    // Upsampling (optionally followed by downsampling): transposed strided convolution.
    if up > 1 {
        var wt: Tensor
        if groups == 1 {
            wt = w.transposed(0, 1)
        } else {
            wt = w.reshaped([groups, outChannels / groups, inPerGroup, kh, kw]).transposed(1, 2)
                .reshaped([groups * inPerGroup, outChannels / groups, kh, kw])
        }
        px0 -= kw - 1; px1 -= kw - up
        py0 -= kh - 1; py1 -= kh - up
        let pxt = max(min(-px0, -px1), 0), pyt = max(min(-py0, -py1), 0)
        var t = conv2dWrapper(x, wt, stride: up, padding: (pyt, pxt), groups: groups, transpose: true, flipWeight: !flipWeight)
        t = upfirdn2d(t, filter, padding: (px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), flipFilter: flipFilter, gain: Float(up * up))
        if down > 1 { t = upfirdn2d(t, filter, down: (down, down), flipFilter: flipFilter) }
        return t
    }
    // No resampling, symmetric non-negative padding: plain convolution.
    if up == 1 && down == 1 && px0 == px1 && py0 == py1 && px0 >= 0 && py0 >= 0 {
        return conv2dWrapper(x, w, padding: (py0, px0), groups: groups, flipWeight: flipWeight)
    }
    // Generic reference path.
    var t = upfirdn2d(x, up > 1 ? filter : identity, up: (up, up), padding: (px0, px1, py0, py1),
                      flipFilter: flipFilter, gain: Float(up * up))
    t = conv2dWrapper(t, w, groups: groups, flipWeight: flipWeight)
    if down > 1 { t = upfirdn2d(t, filter, down: (down, down), flipFilter: flipFilter) }
    return t
}

/// Symmetric padding convenience.
public func conv2dResample(_ x: Tensor, _ w: Tensor, filter f: FIRFilter? = nil, up: Int = 1, down: Int = 1,
                           padding: Int, groups: Int = 1, flipWeight: Bool = true, flipFilter: Bool = false) -> Tensor {
    conv2dResample(x, w, filter: f, up: up, down: down, padding: (padding, padding, padding, padding), groups: groups,
                   flipWeight: flipWeight, flipFilter: flipFilter)
}
