// Concept heatmaps: the Grad-CAM's gradient at the tapped hidden state of f (through f's later
// stages and Psi) agrees with central finite differences taken through the same tapped forward
// pass (in Float64 accumulation of a Float32 network, so a loose relative bound); the CAM is
// relu(sum_c mean(grad_c) A_c) normalised to its maximum; Phi maps are the concept's own 3x3
// map; overlays have the picture's size times the scale.
import Common
import Evaluation
import ImageCodecs
import Models
import NN
import Testing
import TensorCore
import Training

@Suite struct ConceptHeatmapsTests {
    static func ensemble() -> VisCoINModels {
        let rng = RandomGenerator(seed: 11)
        let f = Classifier(config: ResNetArchitecture.tiny.config, classes: 3, generator: rng)
        let g = Generator(.tiny, generator: rng)
        let m = VisCoINBuilder.make(classifier: f, generator: g, concepts: 6, latentChannels: 8, wAvgInit: .pretrained, seed: 2)
        m.eval()
        m.freeze()
        return m
    }

    /// The explainer's logit of class k (or a_j) with `delta` added to hidden state `layer`.
    static func target(_ m: VisCoINModels, _ x: Tensor, layer: Int, delta: (Int, Float)?, concept: Int?, classIndex: Int) -> Double {
        noGrad {
            let (_, hidden) = m.classifier(imagenetNormalized(x)) { i, h in
                guard i == layer, let (p, d) = delta else { return h }
                let copy = h.copy()
                copy.data[p] += d
                return copy
            }
            let phi = m.concepts(hidden).phi
            if let concept { return Double(phi.adaptiveMaxPool2d(1).flattened(from: 1).toArray()[concept]) }
            return Double(m.explainer(phi).toArray()[classIndex])
        }
    }

    @Test func gradCAMFollowsTheGradientAtTheTappedLayer() throws {
        let m = Self.ensemble()
        let x = RandomGenerator(seed: 5).uniform([1, 3, 32, 32], low: -1, high: 1)
        let layer = ConceptHeatmaps.defaultLayer(m)
        #expect(layer == 2)
        let set = ConceptHeatmaps.compute(m, image: x, concepts: [1, 4, 99])
        #expect(set.conceptMaps.map(\.index) == [1, 4] && set.phiMaps.map(\.index) == [1, 4], "invalid indices are dropped")
        let k = set.predictedClass

        // The gradient the CAM is built from, recomputed here the same way, against finite differences.
        var tapped: Tensor? = nil
        let (_, hidden) = m.classifier(imagenetNormalized(x)) { i, h in
            guard i == layer else { return h }
            tapped = h.detach().requiringGrad()
            return tapped!
        }
        let a = tapped!
        let logits = m.explainer(m.concepts(hidden).phi)
        let g = grad(of: logits.slice(dim: 1, start: k, end: k + 1).sum(), wrt: [a])[0]!.toArray()
        let values = a.toArray()
        let picker = RandomGenerator(seed: 9)
        var checked = 0
        for p in picker.permutation(a.count).prefix(40) where values[p] > 0.05 {  // away from the ReLU kink of the stage output
            let eps: Float = 1e-2
            let fd = (Self.target(m, x, layer: layer, delta: (p, eps), concept: nil, classIndex: k)
                      - Self.target(m, x, layer: layer, delta: (p, -eps), concept: nil, classIndex: k)) / Double(2 * eps)
            #expect(abs(fd - Double(g[p])) <= 2e-2 * max(1, abs(fd)), "d logit / d h[\(p)]: autograd \(g[p]), finite differences \(fd)")
            checked += 1
        }
        #expect(checked >= 5)

        // CAM = relu(sum_c mean_hw(g_c) A_c), normalised.
        let c = a.shape[1], cells = a.shape[2] * a.shape[3]
        var cam = [Float](repeating: 0, count: cells)
        for ch in 0..<c {
            let w = (0..<cells).reduce(Float(0)) { $0 + g[ch * cells + $1] } / Float(cells)
            for q in 0..<cells { cam[q] += w * values[ch * cells + q] }
        }
        cam = cam.map { max($0, 0) }
        let peak = cam.max()!
        #expect(set.classMap.height * set.classMap.width == cells && abs(set.classMap.peak - peak) <= 1e-5 * max(1, peak))
        if peak > 0 {
            for q in 0..<cells { #expect(abs(set.classMap.values[q] - cam[q] / peak) < 1e-4) }
            #expect(set.classMap.values.max() == 1)
        }

        // Phi maps: the concept's own 3x3 map over its maximum.
        let phi = noGrad { m.concepts(m.classify(x).hiddenStates).phi }.toArray()
        for map in set.phiMaps {
            let own = Array(phi[(map.index * 9)..<((map.index + 1) * 9)]), top = own.max()!
            #expect(map.height == 3 && map.width == 3 && abs(map.peak - top) < 1e-5)
            if top > 0 { for q in 0..<9 { #expect(abs(map.values[q] - own[q] / top) < 1e-5) } }
        }
    }

    @Test func overlaysAndFigures() throws {
        let m = Self.ensemble()
        let picture = RGBImage(width: 32, height: 32) { x, y in (UInt8(x * 8), UInt8(y * 8), 128) }
        let f = ConceptHeatmaps.figure(m, picture: picture, topK: 2)
        #expect(f.concepts.count == 2 && f.maps.conceptMaps.count == 2)
        // Two rows of (image, class map, 2 concepts) cells, each 32 x 4 = 128 pixels.
        #expect(f.grid.width == 4 * 128 && f.grid.height == 2 * 128)
        let o = ConceptHeatmaps.overlay(picture, f.maps.classMap, scale: 3, opacity: 0)
        #expect(o == ConceptHeatmaps.upscaled(picture, scale: 3), "opacity 0 leaves the picture")
        #expect(ConceptHeatmaps.overlay(picture, f.maps.classMap, scale: 3) != o)
    }
}
