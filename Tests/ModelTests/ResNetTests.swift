// The classifier f against the golden reference: the narrow HF ResNet-50 in train mode (with
// running-statistics updates and every parameter gradient) and eval mode, the full-size
// ResNet-50 / ResNet-18 with pgen weights (HF and torchvision names), and the state-dict
// manifests of the full-size networks.
import Models
import NN
import Testing
import TensorCore
import TestSupport

@Suite struct ResNetTests {
    @Test func narrowClassifierTrainAndEval() throws {
        let golden = try GoldenCase("classifier/hf_resnet50_narrow_viscoin_classifier")
        defer { record(golden.uncheckedKeys()) }
        record(golden.checkPgenSamples())
        let config = ResNetConfig.named("narrow")!
        let labels = try golden.ints("input.labels")
        for tag in ["", "@eval"] {
            let model = Classifier(config: config, classes: 9, generator: RandomGenerator(seed: 0))
            try model.load(golden.stateDict(keys: model.stateDict().map(\.key)))
            model.train(tag.isEmpty)
            let x = try golden.tensor("input.x").requiringGrad()
            let (logits, pooled, hidden) = model.logitsAndPooled(x)
            let loss = crossEntropy(logits, labels: labels)
            loss.backward()
            var failures: [String?] = [golden.check("output.logits" + tag, logits), golden.check("output.loss" + tag, loss),
                                       golden.check("output.pooled" + tag, pooled), golden.check("grad.input.x" + tag, x.grad)]
            for i in 0..<5 { failures.append(golden.check("output.hidden_states.\(i)" + tag, hidden[i])) }
            let grads = parameterGrads(model)
            for key in golden.keys(withPrefix: "grad.param.") where key.hasSuffix(tag) && (tag.isEmpty ? !key.contains("@") : true) {
                let name = String(key.dropFirst("grad.param.".count).dropLast(tag.count))
                failures.append(golden.check(key, grads[name], outliers: 2))
            }
            if tag.isEmpty {
                let state = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.key, $0.tensor) })
                for key in golden.keys(withPrefix: "state_after.") {
                    failures.append(golden.check(key, state[String(key.dropFirst("state_after.".count))]))
                }
            }
            record(failures)
        }
    }

    /// Why the ResNet stays on im2col: the eval-mode input gradient of the narrow case sits on
    /// a ReLU/max-pool kink. On the reference im2col path, a one-ulp change of every seventh
    /// input value (far below the reference's own float32 rounding) leaves every hidden state
    /// within the golden tolerance, yet puts that gradient outside tolerance, which is what oneDNN's
    /// last-bit differences do too. If a regenerated golden file makes this test fail, the case
    /// is well conditioned again and the ResNet can run on the oneDNN convolutions too.
    @Test func narrowEvalInputGradientSitsOnAKink() throws {
        let golden = try GoldenCase("classifier/hf_resnet50_narrow_viscoin_classifier")
        let labels = try golden.ints("input.labels")
        func run(_ perturbation: Float) throws -> (gradient: String?, hidden: [Tensor]) {
            try ConvBackend.$override.withValue(.im2col) {
                let model = Classifier(config: ResNetConfig.named("narrow")!, classes: 9, generator: RandomGenerator(seed: 0))
                try model.load(golden.stateDict(keys: model.stateDict().map(\.key)))
                model.eval()
                let x0 = try golden.tensor("input.x")
                let x = Tensor(x0.toArray().enumerated().map { $0.offset % 7 == 0 ? $0.element * perturbation : $0.element }, shape: x0.shape).requiringGrad()
                let (logits, _, hidden) = model.logitsAndPooled(x)
                crossEntropy(logits, labels: labels).backward()
                return (golden.check("grad.input.x@eval", x.grad), hidden)
            }
        }
        let exact = try run(1), nudged = try run(1 + Float.ulpOfOne)
        #expect(exact.gradient == nil, "\(exact.gradient ?? "")")
        for (i, hidden) in nudged.hidden.enumerated() {  // the nudged forward pass still matches the reference
            let failure = golden.check("output.hidden_states.\(i)@eval", hidden)
            #expect(failure == nil, "\(failure ?? "")")
        }
        #expect(nudged.gradient?.contains("elements outside tolerance") == true, "the one-ulp nudge kept the gradient within tolerance")
    }

    @Test func fullResNet50ClassifierEval() throws {
        let golden = try GoldenCase("classifier/hf_resnet50_full_pgen_viscoin_classifier_eval")
        defer { record(golden.uncheckedKeys()) }
        record(golden.checkPgenSamples())
        let model = Classifier(config: .resnet50, classes: 200, generator: RandomGenerator(seed: 0))
        try model.load(golden.stateDict(keys: model.stateDict().map(\.key)))
        model.eval()
        let x = try golden.tensor("input.x").requiringGrad()
        let (logits, pooled, hidden) = model.logitsAndPooled(x)
        let loss = crossEntropy(logits, labels: try golden.ints("input.labels"))
        loss.backward()
        var failures: [String?] = [golden.check("output.logits", logits), golden.check("output.loss", loss),
                                   golden.check("output.pooled", pooled), golden.check("grad.input.x", x.grad)]
        for i in 0..<5 { failures.append(golden.check("output.hidden_states.\(i)", hidden[i])) }
        record(failures)
    }

    @Test(arguments: [("tv_resnet18_full_pgen", "resnet18"), ("tv_resnet50_full_pgen", "resnet50")])
    func torchvisionNamedResNets(_ testCase: (String, String)) throws {
        let golden = try GoldenCase("classifier/\(testCase.0)")
        defer { record(golden.uncheckedKeys()) }
        let config = ResNetConfig.named(testCase.1)!
        let labels = try golden.ints("input.labels")
        for tag in ["", "@eval"] {
            let model = Classifier(config: config, classes: 1000, generator: RandomGenerator(seed: 0))
            var weights: [String: Tensor] = [:]
            for e in model.stateDict() where !e.isInteger {
                let tv = ResNetNames.torchvision(fromClassifierKey: e.key)!
                weights[e.key] = try golden.parameter(tv)
            }
            try model.load(weights)
            model.train(tag.isEmpty)
            let x = try golden.tensor("input.x").requiringGrad()
            let (logits, _) = model(x)
            let loss = crossEntropy(logits, labels: labels)
            loss.backward()
            var failures: [String?] = [golden.check("output.logits" + tag, logits), golden.check("output.loss" + tag, loss),
                                       golden.check("grad.input.x" + tag, x.grad)]
            if tag.isEmpty {
                let state = Dictionary(uniqueKeysWithValues: model.stateDict().map { (ResNetNames.torchvision(fromClassifierKey: $0.key)!, $0.tensor) })
                for (name, t) in model.namedParameters() {
                    let tv = ResNetNames.torchvision(fromClassifierKey: name)!
                    if golden.has("grad.param.\(tv)") { failures.append(golden.check("grad.param.\(tv)", t.grad, outliers: 2)) }
                    if golden.has("gradnorm.param.\(tv)") { failures.append(golden.check("gradnorm.param.\(tv)", l2(t.grad ?? Tensor.zeros(t.shape)))) }
                }
                for key in golden.keys(withPrefix: "state_after.") {
                    failures.append(golden.check(key, state[String(key.dropFirst("state_after.".count))]))
                }
            }
            record(failures)
        }
    }

    @Test func manifestsOfTheFullSizeNetworks() throws {
        let classifier = Classifier(config: .resnet50, classes: 200, generator: RandomGenerator(seed: 1))
        #expect(try Manifest("viscoin_classifier_resnet50_200classes").differences(from: manifestEntries(classifier)) == [])
        #expect(classifier.resnet.parameterCount == 23_508_032)
        #expect(try Manifest("hf_microsoft_resnet50_ResNetModel").differences(from: manifestEntries(classifier.resnet)) == [])
        let hub = Classifier(config: .resnet50, classes: 1000, generator: RandomGenerator(seed: 1))
        #expect(try Manifest("hf_microsoft_resnet50_ResNetForImageClassification").differences(from: manifestEntries(hub) { key in
            key.hasPrefix("linear.") ? "classifier.1." + key.dropFirst("linear.".count) : key
        }) == [])
        #expect(try Manifest("torchvision_resnet50").differences(from: manifestEntries(hub, keyMap: ResNetNames.torchvision(fromClassifierKey:)).sortedLikeTorchvision()) == [])
        let resnet18 = Classifier(config: .resnet18, classes: 1000, generator: RandomGenerator(seed: 1))
        #expect(try Manifest("torchvision_resnet18").differences(from: manifestEntries(resnet18, keyMap: ResNetNames.torchvision(fromClassifierKey:)).sortedLikeTorchvision()) == [])
    }

    @Test func torchvisionNameMappingRoundTrips() {
        let model = Classifier(config: .resnet50, classes: 10, generator: RandomGenerator(seed: 1))
        for e in model.stateDict() {
            let tv = ResNetNames.torchvision(fromClassifierKey: e.key)
            #expect(tv != nil, "no torchvision name for \(e.key)")
            #expect(tv.flatMap(ResNetNames.classifierKey(fromTorchvision:)) == e.key)
        }
    }
}

extension Array where Element == Manifest.Entry {
    /// torchvision registers a block's modules as conv1, bn1, conv2, bn2, (conv3, bn3,) downsample;
    /// HF registers the shortcut first. Reorder our mapped entries into torchvision's order.
    func sortedLikeTorchvision() -> [Manifest.Entry] {
        func rank(_ key: String) -> (String, Int, String) {
            let parts = key.split(separator: ".").map(String.init)
            guard parts.count >= 3, parts[0].hasPrefix("layer") else {
                let order = ["conv1": 0, "bn1": 1, "fc": 9]
                return ("", order[parts[0]] ?? 5, key)
            }
            let block = parts[0] + "." + parts[1]
            let part = parts[2]
            let index: Int
            if part.hasPrefix("conv") { index = (Int(part.dropFirst(4)) ?? 0) * 2 - 1 }
            else if part.hasPrefix("bn") { index = (Int(part.dropFirst(2)) ?? 0) * 2 }
            else { index = 100 }
            return (block, index, key)
        }
        // Stable sort by (group position, block, sub-module) keeping the in-module order.
        let indexed = enumerated().map { ($0.offset, $0.element) }
        return indexed.sorted { a, b in
            let ra = rank(a.1.key), rb = rank(b.1.key)
            let ga = a.1.key.hasPrefix("layer") ? 1 : (a.1.key.hasPrefix("fc") ? 2 : 0)
            let gb = b.1.key.hasPrefix("layer") ? 1 : (b.1.key.hasPrefix("fc") ? 2 : 0)
            if ga != gb { return ga < gb }
            if ga == 1 {
                let la = layerOrder(a.1.key), lb = layerOrder(b.1.key)
                if la != lb { return la < lb }
                if ra.1 != rb.1 { return ra.1 < rb.1 }
            } else if ra.1 != rb.1 {
                return ra.1 < rb.1
            }
            return a.0 < b.0
        }.map(\.1)
    }
}

/// (stage, block) of a torchvision key "layerS.B...." for ordering, as one comparable number.
private func layerOrder(_ key: String) -> Int {
    let parts = key.split(separator: ".")
    return (Int(parts[0].dropFirst(5)) ?? 0) * 1000 + (Int(parts[1]) ?? 0)
}

/// Whole networks on the oneDNN convolutions against the im2col reference path: the demo's tiny
/// ResNet (eval and train mode, with the input gradient) and the tiny generator; and which
/// backend each network runs on when nothing is forced.
struct ConvBackendNetworkTests {
    /// Image and z gradient of the tiny generator and discriminator, with the backward pass
    /// run after `forward` returns (outside any override it set).
    static func ganPass(_ forward: (() -> Tensor) -> Tensor) -> [Float] {
        let g = Generator(.tiny, generator: RandomGenerator(seed: 3)), d = Discriminator(.tiny, generator: RandomGenerator(seed: 4))
        let z = RandomGenerator(seed: 5).normal([2, StyleGAN2Config.tiny.zDim]).requiringGrad()
        let score = forward { d(g(z, noise: .const).image).sum() }
        score.backward()
        return score.toArray() + z.grad!.toArray()
    }

    @Test func eachNetworkPicksItsBackendAndItsGradientsFollow() throws {
        try #require(ConvBackend.configured == nil, "VISCOIN_CONV forces one backend; the networks' own choice is not in use")
        let geometry = { ConvGeometry(input: [1, 4, 8, 8], weight: [4, 4, 3, 3], stride: (1, 1), padding: (1, 1), groups: 1) }
        #expect(geometry().backend == .im2col && ConvBackend.network(.onednn, geometry).backend == .onednn)
        #expect(ConvBackend.$override.withValue(.im2col) { ConvBackend.network(.onednn, geometry).backend } == .im2col, "an override wins")
        // StyleGAN2 runs on oneDNN by default, and the gradients of a pass run on the kernels
        // its forward pass ran on, wherever backward() is called.
        let byDefault = Self.ganPass { $0() }
        let onednn = Self.ganPass { body in ConvBackend.$override.withValue(.onednn) { body() } }
        let im2col = Self.ganPass { body in ConvBackend.$override.withValue(.im2col) { body() } }
        #expect(byDefault == onednn)
        #expect(byDefault != im2col, "the two backends differ in the last bits here, so equality above says which one ran")
        // The ResNet stays on the reference path.
        func resnet(_ backend: ConvBackend?) -> [Float] {
            let model = Classifier(config: ResNetArchitecture.tiny.config, classes: 9, generator: RandomGenerator(seed: 5))
            let x = RandomGenerator(seed: 6).normal([2, 3, 32, 32]).requiringGrad()
            let logits = backend.map { b in ConvBackend.$override.withValue(b) { model(x).0 } } ?? model(x).0
            logits.square().sum().backward()
            return logits.toArray() + x.grad!.toArray()
        }
        #expect(resnet(nil) == resnet(.im2col) && resnet(nil) != resnet(.onednn))
    }

    @Test func tinyResNetAgreesOnBothBackends() {
        func run(_ backend: ConvBackend, train: Bool) -> (logits: [Float], gx: [Float]) {
            ConvBackend.$override.withValue(backend) {
                let model = Classifier(config: ResNetArchitecture.tiny.config, classes: 9, generator: RandomGenerator(seed: 5))
                model.train(train)
                let x = RandomGenerator(seed: 6).normal([54, 3, 32, 32]).requiringGrad()
                let (logits, _) = model(x)
                logits.square().sum().backward()
                return (logits.toArray(), x.grad!.toArray())
            }
        }
        for train in [false, true] {
            let a = run(.onednn, train: train), b = run(.im2col, train: train)
            let scale = max(1, b.logits.map { abs($0) }.max() ?? 1), gscale = max(1e-6, b.gx.map { abs($0) }.max() ?? 1)
            let worst = zip(a.logits, b.logits).map { abs($0 - $1) }.max() ?? 0
            let gworst = zip(a.gx, b.gx).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-4 * scale, "train \(train): logits differ by \(worst) (scale \(scale))")
            #expect(gworst <= 1e-3 * gscale, "train \(train): input gradients differ by \(gworst) (scale \(gscale))")
        }
    }
}
