// The golden double-backward chain: x -> conv2d(W1, pad 1) -> bias_act(b1, lrelu) ->
// upsample2d -> modulated_conv2d(W2, styles, demodulated, fused, pad 1) = y;
// (g_x, g_s) = d sum(y R1) / d(x, styles) with createGraph; loss2 = sum(g_x R2x) + sum(g_s R2s);
// gradients of loss2 with respect to x, W1, b1, W2, styles.
import Testing
import TensorCore
import TestSupport

@Suite struct DoubleBackwardGoldenTests {
    @Test func convLreluUpfirdnModconvChain() throws {
        let golden = try GoldenCase("double_backward/chain_conv_lrelu_upfirdn_modconv")
        defer { record(golden.uncheckedKeys()) }
        let x = try golden.tensor("input.x").requiringGrad()
        let w1 = try golden.tensor("input.W1").requiringGrad()
        let b1 = try golden.tensor("input.b1").requiringGrad()
        let w2 = try golden.tensor("input.W2").requiringGrad()
        let styles = try golden.tensor("input.styles").requiringGrad()
        let f = FIRFilter.setup([1, 3, 3, 1])
        var h = conv2d(x, w1, padding: 1)
        h = biasAct(h, bias: b1, act: .lrelu)
        h = upsample2d(h, f)
        let y = modulatedConv2d(h, weight: w2, styles: styles, padding: 1, resampleFilter: f, demodulate: true, fusedModconv: true)
        let inner = (y * (try golden.tensor("input.R1"))).sum()
        let firsts = Autograd.grad(of: [inner], wrt: [x, styles], createGraph: true)
        let gx = try #require(firsts[0]), gs = try #require(firsts[1])
        let loss2 = (gx * (try golden.tensor("input.R2x"))).sum() + (gs * (try golden.tensor("input.R2s"))).sum()
        let seconds = Autograd.grad(of: [loss2], wrt: [x, w1, b1, w2, styles])
        var failures: [String?] = [
            golden.check("output.y", y), golden.check("output.g_x", gx), golden.check("output.g_styles", gs),
            golden.check("output.loss2", loss2),
        ]
        for (key, g) in zip(["grad.input.x", "grad.input.W1", "grad.input.b1", "grad.input.W2", "grad.input.styles"], seconds) {
            failures.append(golden.check(key, g))
        }
        for f in failures.compactMap({ $0 }) { Issue.record("\(f)") }
    }
}
