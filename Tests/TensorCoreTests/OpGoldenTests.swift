// Every operator case of the golden set (../shared/golden/ops, copied to Tests/Fixtures):
// forward values and the gradients of sum(output * R) with respect to every input that has a
// stored gradient, at the tolerances of the golden README (with its per-case overrides).
import Common
import Testing
import TensorCore
import TestSupport

extension JSONValue {
    var int: Int? { intValue.map { Int($0) } }
    var float: Float? { doubleValue.map { Float($0) } }
}

/// How each golden op case is computed with our operators.
nonisolated(unsafe) let opCases: [String: (GoldenCase, [String: Tensor]) throws -> [String: Tensor]] = [
    "adaptive_avg_pool2d_2x2_to_3": { g, t in ["output.y": try t.get("input.x").adaptiveAvgPool2d(g.config["output_size"]!.int!)] },
    "adaptive_avg_pool2d_5x5_to_3": { g, t in ["output.y": try t.get("input.x").adaptiveAvgPool2d(g.config["output_size"]!.int!)] },
    "adaptive_avg_pool2d_7x7_to_1": { g, t in ["output.y": try t.get("input.x").adaptiveAvgPool2d(g.config["output_size"]!.int!)] },
    "adaptive_avg_pool2d_7x7_to_3": { g, t in ["output.y": try t.get("input.x").adaptiveAvgPool2d(g.config["output_size"]!.int!)] },
    "adaptive_max_pool2d_3x3_to_1": { g, t in ["output.y": try t.get("input.x").adaptiveMaxPool2d(g.config["output_size"]!.int!)] },
    "adaptive_max_pool2d_7x7_to_1": { g, t in ["output.y": try t.get("input.x").adaptiveMaxPool2d(g.config["output_size"]!.int!)] },
    "adaptive_max_pool2d_7x7_to_3": { g, t in ["output.y": try t.get("input.x").adaptiveMaxPool2d(g.config["output_size"]!.int!)] },
    "batch_norm2d_eval": batchNormCase,
    "batch_norm2d_train": batchNormCase,
    "batch_norm2d_train_small": batchNormCase,
    "bias_act_linear_clamp256": biasActCase,
    "bias_act_linear_nobias_gain": biasActCase,
    "bias_act_lrelu_2d": biasActCase,
    "bias_act_lrelu_clamp256": biasActCase,
    "bias_act_lrelu_default": biasActCase,
    "bias_act_lrelu_gain_sqrthalf_clamp": biasActCase,
    "bias_act_relu_default": biasActCase,
    "conv2d_k1_s1_p0": convCase,
    "conv2d_k1_s2_p0_nobias": convCase,
    "conv2d_k3_s1_p0": convCase,
    "conv2d_k3_s1_p1": convCase,
    "conv2d_k3_s1_p1_depthwise": convCase,
    "conv2d_k3_s1_p1_g4": convCase,
    "conv2d_k3_s2_p1_nobias": convCase,
    "conv2d_k5_s1_p2": convCase,
    "conv2d_k5_s2_p2": convCase,
    "conv2d_k5_s4_p2": convCase,
    "conv2d_k7_s2_p3_nobias": convCase,
    "conv2d_resample_down2_k1_p0": convResampleCase,
    "conv2d_resample_down2_k3_p1": convResampleCase,
    "conv2d_resample_plain_k3_p1": convResampleCase,
    "conv2d_resample_up2_k1_p0": convResampleCase,
    "conv2d_resample_up2_k3_p1": convResampleCase,
    "conv2d_resample_up2_k3_p1_flipw": convResampleCase,
    "conv2d_resample_up2_k3_p1_groups2": convResampleCase,
    "conv_transpose2d_k3_s2_p0_g2_nobias": convTransposeCase,
    "conv_transpose2d_k3_s2_p0_nobias": convTransposeCase,
    "conv_transpose2d_k3_s2_p1": convTransposeCase,
    "cross_entropy_mean": { g, t in ["output.loss": crossEntropy(try t.get("input.logits"), labels: try g.ints("input.labels"))] },
    "fc_linear_bias_init1": fullyConnectedCase,
    "fc_linear_nobias": fullyConnectedCase,
    "fc_lrelu_lr0p01": fullyConnectedCase,
    "grid_sample_bilinear_reflection": { _, t in ["output.y": gridSample(try t.get("input.x"), try t.get("input.grid"), padding: .reflection)] },
    "grid_sample_bilinear_zeros": { _, t in ["output.y": gridSample(try t.get("input.x"), try t.get("input.grid"), padding: .zeros)] },
    "interpolate_bilinear_11x9_to_17x23": interpolateCase,
    "interpolate_bilinear_down_32to13": interpolateCase,
    "interpolate_bilinear_down_32to13_aa": interpolateCase,
    "interpolate_bilinear_up_7to15": interpolateCase,
    "interpolate_bilinear_up_7to15_aa": interpolateCase,
    "l1_loss_mean": { _, t in ["output.loss": l1Loss(try t.get("input.a"), try t.get("input.b"))] },
    "mse_loss_mean": { _, t in ["output.loss": mseLoss(try t.get("input.a"), try t.get("input.b"))] },
    "leaky_relu_0p01": { _, t in ["output.y": try t.get("input.x").leakyRelu(0.01)] },
    "leaky_relu_0p2": { _, t in ["output.y": try t.get("input.x").leakyRelu(0.2)] },
    "linear_bias": { _, t in ["output.y": linear(try t.get("input.x"), weight: try t.get("param.weight"), bias: try t.get("param.bias"))] },
    "linear_nobias": { _, t in ["output.y": linear(try t.get("input.x"), weight: try t.get("param.weight"))] },
    "log_softmax_dim1": { _, t in ["output.y": try t.get("input.x").logSoftmax(dim: 1)] },
    "softmax_dim1": { _, t in ["output.y": try t.get("input.x").softmax(dim: 1)] },
    "max_pool2d_k3_s2_p1_8x8": { _, t in ["output.y": try t.get("input.x").maxPool2d(kernel: 3, stride: 2, padding: 1)] },
    "max_pool2d_k3_s2_p1_9x9": { _, t in ["output.y": try t.get("input.x").maxPool2d(kernel: 3, stride: 2, padding: 1)] },
    "modulated_conv2d_demod0_up1_fused0": modulatedConvCase,
    "modulated_conv2d_demod0_up1_fused1": modulatedConvCase,
    "modulated_conv2d_demod0_up2_fused0": modulatedConvCase,
    "modulated_conv2d_demod0_up2_fused1": modulatedConvCase,
    "modulated_conv2d_demod1_up1_fused0": modulatedConvCase,
    "modulated_conv2d_demod1_up1_fused1": modulatedConvCase,
    "modulated_conv2d_demod1_up2_fused0": modulatedConvCase,
    "modulated_conv2d_demod1_up2_fused1": modulatedConvCase,
    "normalize_2nd_moment": { _, t in ["output.y": normalize2ndMoment(try t.get("input.x"))] },
    "normalize_p2_dim1": { _, t in ["output.y": try t.get("input.x").normalized(dim: 1)] },
    "relu": { _, t in ["output.y": try t.get("input.x").relu()] },
    "softplus": { _, t in ["output.y": try t.get("input.x").softplus()] },
    "upfirdn2d_downsample2d_f1331": { _, t in ["output.y": downsample2d(try t.get("input.x"), FIRFilter(try t.get("input.f")))] },
    "upfirdn2d_downsample2d_f1331_odd": { _, t in ["output.y": downsample2d(try t.get("input.x"), FIRFilter(try t.get("input.f")))] },
    "upfirdn2d_negative_pad_crop": { _, t in
        ["output.y": upfirdn2d(try t.get("input.x"), FIRFilter(try t.get("input.f")), padding: (-1, 2, 1, -2))]
    },
    "upfirdn2d_nonsym_down2": { _, t in
        ["output.y": upfirdn2d(try t.get("input.x"), FIRFilter(try t.get("input.f")), down: (2, 2), padding: (1, 1, 1, 1))]
    },
    "upfirdn2d_nonsym_up2": { _, t in
        ["output.y": upfirdn2d(try t.get("input.x"), FIRFilter(try t.get("input.f")), up: (2, 2), padding: (1, 1, 2, 0))]
    },
    "upfirdn2d_nonsym_up2_flip": { _, t in
        ["output.y": upfirdn2d(try t.get("input.x"), FIRFilter(try t.get("input.f")), up: (2, 2), padding: (1, 1, 2, 0), flipFilter: true)]
    },
    "upfirdn2d_pad_asym_gain2": { _, t in
        ["output.y": upfirdn2d(try t.get("input.x"), FIRFilter(try t.get("input.f")), padding: (1, 2, 0, 3), gain: 2)]
    },
    "upfirdn2d_separable8_up2": { _, t in ["output.y": upsample2d(try t.get("input.x"), FIRFilter(try t.get("input.f")))] },
    "upfirdn2d_upsample2d_f1331": { _, t in ["output.y": upsample2d(try t.get("input.x"), FIRFilter(try t.get("input.f")))] },
]

func batchNormCase(_ g: GoldenCase, _ t: [String: Tensor]) throws -> [String: Tensor] {
    let c = g.config["constructor"]!
    return ["output.y": batchNorm(try t.get("input.x"), weight: t["param.weight"], bias: t["param.bias"],
                                  runningMean: t["param.running_mean"], runningVar: t["param.running_var"],
                                  training: g.config["mode"]?.stringValue == "train",
                                  momentum: c["momentum"]!.float!, eps: c["eps"]!.float!)]
}

func biasActCase(_ g: GoldenCase, _ t: [String: Tensor]) throws -> [String: Tensor] {
    let k = g.config["kwargs"]!
    return ["output.y": biasAct(try t.get("input.x"), bias: t["input.b"], dim: k["dim"]?.int ?? 1,
                                act: Activation(rawValue: k["act"]!.stringValue!)!, alpha: k["alpha"]?.float,
                                gain: k["gain"]?.float, clamp: k["clamp"]?.float)]
}

func convCase(_ g: GoldenCase, _ t: [String: Tensor]) throws -> [String: Tensor] {
    let c = g.config["constructor"]!
    return ["output.y": conv2d(try t.get("input.x"), try t.get("param.weight"), bias: t["param.bias"],
                               stride: c["stride"]!.int!, padding: c["padding"]!.int!, groups: c["groups"]!.int!)]
}

func convTransposeCase(_ g: GoldenCase, _ t: [String: Tensor]) throws -> [String: Tensor] {
    let c = g.config["constructor"]!
    return ["output.y": convTranspose2d(try t.get("input.x"), try t.get("param.weight"), bias: t["param.bias"],
                                        stride: c["stride"]!.int!, padding: c["padding"]!.int!, groups: c["groups"]!.int!)]
}

func convResampleCase(_ g: GoldenCase, _ t: [String: Tensor]) throws -> [String: Tensor] {
    let k = g.config["kwargs"]!
    return ["output.y": conv2dResample(try t.get("input.x"), try t.get("input.w"), filter: FIRFilter(try t.get("input.f")),
                                       up: k["up"]?.int ?? 1, down: k["down"]?.int ?? 1, padding: k["padding"]?.int ?? 0,
                                       groups: k["groups"]?.int ?? 1, flipWeight: k["flip_weight"]?.boolValue ?? true)]
}

func fullyConnectedCase(_ g: GoldenCase, _ t: [String: Tensor]) throws -> [String: Tensor] {
    let c = g.config["constructor"]!
    let lr = c["lr_multiplier"]?.float ?? 1
    let inFeatures = c["in_features"]!.int!
    let w = try t.get("param.weight") * (lr / Float(inFeatures).squareRoot())
    let b = t["param.bias"].map { $0 * lr }
    let act = Activation(rawValue: c["activation"]?.stringValue ?? "linear")!
    let x = try t.get("input.x")
    if act == .linear {
        return ["output.y": linear(x, weight: w, bias: b)]
    }
    return ["output.y": biasAct(linear(x, weight: w), bias: b, act: act)]
}

func interpolateCase(_ g: GoldenCase, _ t: [String: Tensor]) throws -> [String: Tensor] {
    let size = g.config["size"]!.arrayValue!.map { $0.int! }
    return ["output.y": try t.get("input.x").interpolate(size: (size[0], size[1]), antialias: g.config["antialias"]?.boolValue ?? false)]
}

func modulatedConvCase(_ g: GoldenCase, _ t: [String: Tensor]) throws -> [String: Tensor] {
    let k = g.config["kwargs"]!
    return ["output.y": modulatedConv2d(try t.get("input.x"), weight: try t.get("input.weight"), styles: try t.get("input.styles"),
                                        noise: t["input.noise"], up: k["up"]?.int ?? 1, padding: k["padding"]?.int ?? 0,
                                        resampleFilter: FIRFilter(try t.get("input.f")), demodulate: k["demodulate"]!.boolValue!,
                                        flipWeight: k["flip_weight"]!.boolValue!, fusedModconv: k["fused_modconv"]!.boolValue!)]
}

@Suite struct OpGoldenTests {
    @Test(arguments: opCases.keys.sorted())
    func goldenCase(_ name: String) throws {
        let failures = try runOpCase("ops/\(name)", opCases[name]!)
        for f in failures { Issue.record("\(f)") }
    }

    @Test func everyGoldenOpFileHasACase() throws {
        let files = try Files.list("\(goldenDirectory)/ops").filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(12)) }
        #expect(Set(files) == Set(opCases.keys), "cases without a test: \(Set(files).subtracting(opCases.keys))")
    }

    @Test func pgenMatchesItsTestVectors() {
        #expect(pgen(seed: 0, exp: 0, offset: 0, count: 4) == [-1, -0.183301926, 0.633396268, -0.344179988])
        #expect(pgen(seed: 12345, exp: -3, offset: 1, count: 4) == [1.00993991, 0.912226439, 0.879467726, 0.882037044])
        #expect(Array(pgen(seed: 3_735_928_559, exp: 7, offset: 0, count: 1003)[1000...]) == [-73.4349518, 39.6333008, 32.7074432])
    }
}
