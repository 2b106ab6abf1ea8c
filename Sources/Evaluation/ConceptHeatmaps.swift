// Concept heatmaps (the reference's work-in-progress `concept-heatmaps` command): where on one
// image each concept is active. Two kinds of map: Phi_j's own 3x3 map, and a Grad-CAM at a
// hidden state of f that Psi reads (default: the finest one, stage 2's output) — the gradient
// of a_j = max Phi_j (or of the explainer's logit of its predicted class) flows back through
// f's later stages and Psi to that layer; weights are the spatial means of the gradient per
// channel, the map is relu(sum_c w_c A_c). At low resolutions the 3x3 map comes from a 1x1
// feature map and is flat, while the stage-2 Grad-CAM still has 4x4 cells at 32 px. Maps are
// normalised to [0, 1] by their own maximum (`peak` keeps the raw value); `overlay` blends one
// over the picture with a colour scale.
import ImageCodecs
import Models
import TensorCore

public enum HeatmapKind: String, CaseIterable, Sendable, Codable {
    /// Grad-CAM at a hidden state of f.
    case gradcam
    /// Phi_j's 3x3 map.
    case phi
}

/// One map, row-major, values in [0, 1].
public struct Heatmap: Codable, Sendable, Equatable {
    /// "class" or "concept".
    public let target: String
    /// The concept index (or the class index for a class map).
    public let index: Int
    public let kind: HeatmapKind
    public let height: Int
    public let width: Int
    public let values: [Float]
    /// The maximum before normalisation (0: the map is empty).
    public let peak: Float
}

public struct ConceptHeatmapSet: Codable, Sendable {
    /// The explainer's predicted class.
    public let predictedClass: Int
    /// The hidden state (index into f's five) the Grad-CAM maps are taken at, and its size.
    public let layer: Int
    /// Grad-CAM of the explainer's logit for `predictedClass`.
    public let classMap: Heatmap
    /// Per requested concept: its Grad-CAM and its Phi map.
    public let conceptMaps: [Heatmap]
    public let phiMaps: [Heatmap]
}

public enum ConceptHeatmaps {
    /// The default Grad-CAM layer: the first hidden state Psi reads (stage 2's output).
    public static func defaultLayer(_ m: VisCoINModels) -> Int { m.classifier.resnet.config.hiddenSizes.count + 1 - 3 }

    /// Maps of `image` [1, 3, R, R] in [-1, 1] for `concepts` (indices into Phi) at hidden state
    /// `layer` of f (nil: `defaultLayer`). Evaluation mode; gradients only reach the tapped layer.
    public static func compute(_ m: VisCoINModels, image: Tensor, concepts: [Int], layer: Int? = nil) -> ConceptHeatmapSet {
        precondition(image.rank == 4 && image.shape[0] == 1, "one image [1, 3, R, R]")
        let hiddenCount = m.classifier.resnet.config.hiddenSizes.count + 1
        let at = layer ?? defaultLayer(m)
        precondition(at >= 0 && at < hiddenCount, "layer must be in 0..<\(hiddenCount)")
        m.eval()
        var tapped: Tensor? = nil
        let (_, hidden) = m.classifier(imagenetNormalized(image.detach())) { i, h in
            guard i == at else { return h }
            let leaf = h.detach().requiringGrad()
            tapped = leaf
            return leaf
        }
        let (phi, _) = m.concepts(hidden)
        let logits = m.explainer(phi)
        let k = ConceptAmplification.argmax(logits.toArray())
        let pooled = phi.adaptiveMaxPool2d(1).flattened(from: 1)
        let a = tapped!
        let activations = a.toArray(), channels = a.shape[1], h = a.shape[2], w = a.shape[3]

        func gradCAM(_ target: Tensor, name: String, index: Int) -> Heatmap {
            let g = (grad(of: target, wrt: [a], retainGraph: true)[0] ?? Tensor.zeros(a.shape)).toArray()
            var cam = [Float](repeating: 0, count: h * w)
            for c in 0..<channels {
                let plane = c * h * w
                var weight: Float = 0
                for p in 0..<(h * w) { weight += g[plane + p] }
                weight /= Float(h * w)
                if weight == 0 { continue }
                for p in 0..<(h * w) { cam[p] += weight * activations[plane + p] }
            }
            return normalised(cam.map { max($0, 0) }, target: name, index: index, kind: .gradcam, height: h, width: w)
        }

        let classMap = gradCAM(logits.slice(dim: 1, start: k, end: k + 1).sum(), name: "class", index: k)
        let valid = concepts.filter { $0 >= 0 && $0 < m.concepts }
        let conceptMaps = valid.map { j in gradCAM(pooled.slice(dim: 1, start: j, end: j + 1).sum(), name: "concept", index: j) }
        let phiMaps = phiMaps(phi.detach(), concepts: valid)
        return ConceptHeatmapSet(predictedClass: k, layer: at, classMap: classMap, conceptMaps: conceptMaps, phiMaps: phiMaps)
    }

    /// The Phi maps of `concepts` from Phi [1, K, h, w] itself (no pass through the networks).
    public static func phiMaps(_ phi: Tensor, concepts: [Int]) -> [Heatmap] {
        let values = phi.toArray(), height = phi.shape[2], width = phi.shape[3], cells = height * width
        return concepts.filter { $0 >= 0 && $0 < phi.shape[1] }.map { j in
            normalised(Array(values[(j * cells)..<((j + 1) * cells)]), target: "concept", index: j, kind: .phi, height: height, width: width)
        }
    }

    static func normalised(_ values: [Float], target: String, index: Int, kind: HeatmapKind, height: Int, width: Int) -> Heatmap {
        let finite = values.map { $0.isFinite ? $0 : 0 }
        let peak = finite.max() ?? 0
        return Heatmap(target: target, index: index, kind: kind, height: height, width: width,
                       values: peak > 0 ? finite.map { $0 / peak } : finite.map { _ in 0 }, peak: peak)
    }

    /// `picture` scaled up (nearest) by `scale` with `map` upsampled bilinearly over it in a
    /// blue-to-yellow-to-red scale; `opacity` is the weight of the colour at the map's maximum.
    public static func overlay(_ picture: RGBImage, _ map: Heatmap, scale: Int = 1, opacity: Float = 0.6) -> RGBImage {
        let s = max(1, scale), w = picture.width * s, h = picture.height * s
        let cells = Tensor(map.values, shape: [1, 1, map.height, map.width])
        let smooth = noGrad { cells.interpolate(size: (h, w), mode: .bilinear) }.toArray()
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let src = ((y / s) * picture.width + x / s) * 3, dst = (y * w + x) * 3
                let v = min(max(smooth[y * w + x], 0), 1)
                let colour = colourScale(v), alpha = opacity * (0.25 + 0.75 * v)
                for c in 0..<3 {
                    let blended = Float(picture.pixels[src + c]) * (1 - alpha) + colour[c] * alpha
                    pixels[dst + c] = UInt8(min(max(blended.rounded(), 0), 255))
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }

    /// One image's heatmap figure: the concepts that matter most for the explainer's class
    /// (top `topK` v_j), their maps, and a grid of two rows — the image, then the class and
    /// concept Grad-CAM overlays; the reconstruction, a blank cell, then the Phi overlays —
    /// scaled to at least 128 pixels per cell.
    public static func figure(_ m: VisCoINModels, picture: RGBImage, topK: Int, layer: Int? = nil)
        -> (concepts: [Int], intensities: [Float], maps: ConceptHeatmapSet, grid: RGBImage) {
        let image = ImageTensors.tensor([picture]) / 127.5 - 1
        let analysis = ConceptAmplification.analyse(m, image: image)
        let chosen = ConceptAmplification.select(analysis.intensities, .topK(min(max(topK, 1), m.concepts)))
        let set = compute(m, image: image, concepts: chosen, layer: layer)
        let rebuilt = ImageTensors.images(fromGenerated: noGrad { m.gan(analysis.phi, analysis.phiPrime, noise: .const).image })[0]
        let scale = max(1, 128 / max(m.resolution, 1))
        let blank = RGBImage(width: picture.width, height: picture.height) { _, _ in (255, 255, 255) }
        let top = [upscaled(picture, scale: scale), overlay(picture, set.classMap, scale: scale)] + set.conceptMaps.map { overlay(picture, $0, scale: scale) }
        let bottom = [upscaled(rebuilt, scale: scale), upscaled(blank, scale: scale)] + set.phiMaps.map { overlay(picture, $0, scale: scale) }
        return (chosen, chosen.map { analysis.intensities[$0] }, set, RGBImage.grid(top + bottom, columns: top.count)!)
    }

    /// `picture` scaled up by `scale` (nearest), as the overlays are.
    public static func upscaled(_ picture: RGBImage, scale: Int) -> RGBImage {
        let s = max(1, scale), w = picture.width * s
        var pixels = [UInt8](repeating: 0, count: w * picture.height * s * 3)
        for y in 0..<(picture.height * s) {
            for x in 0..<w {
                let src = ((y / s) * picture.width + x / s) * 3, dst = (y * w + x) * 3
                pixels[dst] = picture.pixels[src]; pixels[dst + 1] = picture.pixels[src + 1]; pixels[dst + 2] = picture.pixels[src + 2]
            }
        }
        return RGBImage(width: w, height: picture.height * s, pixels: pixels)
    }

    /// Dark blue (0) -> cyan -> yellow -> red (1).
    static func colourScale(_ v: Float) -> [Float] {
        let stops: [(Float, [Float])] = [(0, [20, 30, 140]), (0.35, [40, 190, 220]), (0.7, [250, 230, 60]), (1, [220, 30, 30])]
        for i in 1..<stops.count where v <= stops[i].0 {
            let (a, ca) = stops[i - 1], (b, cb) = stops[i]
            let t = (v - a) / (b - a)
            return (0..<3).map { ca[$0] + (cb[$0] - ca[$0]) * t }
        }
        return stops.last!.1
    }
}
