// The built-in demo dataset: procedurally drawn H&E-like tissue patches in the 9 classes of
// NCT-CRC-HE-100K. Each image is drawn from a vector of 12 named visual concepts (nuclei
// density, size, elongation and darkness; fibre density and alignment; gland rings; fat cells;
// mucus; debris; empty background; eosin staining), sampled per image from ranges that
// characterise its class. The vector is stored with the image as its ground truth, so the
// concepts VisCoIN learns can be compared with the true ones. Seeded: image i depends only on
// (seed, i).
import Common
import ImageCodecs
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

public enum DemoTissue {
    /// NCT-CRC-HE-100K class folder names, in their (alphabetical) label order.
    public static let classes = ["ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]
    public static let classDescriptions = [
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium",
    ]

    public static let conceptNames = [
        "nuclei_density", "nuclei_size", "nuclei_elongation", "nuclei_darkness", "fibre_density", "fibre_alignment",
        "gland_rings", "fat_cells", "mucus", "debris", "empty_background", "eosin_staining",
    ]

    /// Per class, the [low, high] range of each concept (order of `conceptNames`).
    static let ranges: [[(Double, Double)]] = [
        // ADI: large empty fat cells with thin membranes, few nuclei.
        [(0, 0.1), (0.2, 0.4), (0.3, 0.6), (0.4, 0.6), (0, 0.1), (0, 0.3), (0, 0), (0.8, 1), (0, 0.05), (0, 0.05), (0, 0.1), (0.1, 0.3)],
        // BACK: empty glass.
        [(0, 0.05), (0.2, 0.4), (0, 0.3), (0.2, 0.4), (0, 0.05), (0, 0.2), (0, 0), (0, 0), (0, 0.05), (0, 0.1), (0.8, 1), (0, 0.15)],
        // DEB: fragments, some mucus, scattered dark small nuclei.
        [(0.2, 0.4), (0.1, 0.3), (0, 0.5), (0.6, 0.9), (0, 0.2), (0, 0.3), (0, 0), (0, 0), (0.1, 0.3), (0.7, 1), (0.1, 0.3), (0.4, 0.7)],
        // LYM: dense small round dark nuclei.
        [(0.8, 1), (0.15, 0.3), (0, 0.15), (0.8, 1), (0, 0.1), (0, 0.3), (0, 0), (0, 0), (0, 0.05), (0, 0.15), (0, 0.1), (0.2, 0.4)],
        // MUC: pale blue wisps.
        [(0, 0.1), (0.2, 0.4), (0, 0.4), (0.3, 0.5), (0, 0.15), (0, 0.3), (0, 0), (0, 0), (0.7, 1), (0, 0.2), (0.1, 0.3), (0.1, 0.3)],
        // MUS: dense aligned fibres, elongated nuclei, strong eosin.
        [(0.15, 0.3), (0.3, 0.5), (0.7, 1), (0.5, 0.7), (0.7, 1), (0.7, 1), (0, 0), (0, 0), (0, 0), (0, 0.05), (0, 0.05), (0.7, 0.9)],
        // NORM: regular gland rings.
        [(0.3, 0.5), (0.3, 0.5), (0.4, 0.7), (0.5, 0.7), (0, 0.2), (0, 0.3), (0.6, 1), (0, 0), (0.1, 0.3), (0, 0.1), (0, 0.1), (0.4, 0.6)],
        // STR: looser, wavy fibres, few nuclei.
        [(0.05, 0.2), (0.2, 0.4), (0.5, 0.8), (0.4, 0.6), (0.4, 0.7), (0.1, 0.4), (0, 0), (0, 0), (0, 0.1), (0, 0.1), (0, 0.1), (0.5, 0.75)],
        // TUM: crowded large dark nuclei, broken glands, some debris.
        [(0.6, 0.85), (0.6, 1), (0.2, 0.5), (0.6, 0.85), (0, 0.2), (0, 0.3), (0.1, 0.4), (0, 0), (0, 0.1), (0.1, 0.3), (0, 0.1), (0.4, 0.6)],
    ]

    /// The concept vector of image `index` of class `label` (values quantised to 1e-4 so they
    /// survive the JSON index exactly).
    public static func sampleConcepts(label: Int, seed: UInt64, index: Int) -> [Float] {
        let rng = RandomGenerator(seed: seed, stream: 0x434F4E43_00000000 | UInt64(index))
        return ranges[label].map { lo, hi in
            let v = lo + (hi - lo) * rng.nextDouble()
            return Float((v * 10_000).rounded() / 10_000)
        }
    }

    /// Plans `count` images, classes in turn (balanced), split with stratified seeded fractions.
    public static func plan(count: Int, seed: UInt64, valFraction: Double, testFraction: Double) -> PreparationPlan {
        let labels = (0..<count).map { $0 % classes.count }
        let all = Array(0..<count)
        let test = Splits.stratifiedSample(labels: labels, candidates: all, fraction: testFraction, seed: seed, purpose: Splits.testPurpose)
        let val = Splits.stratifiedSample(labels: labels, candidates: all.filter { !test.contains($0) }, fraction: valFraction, seed: seed,
                                          purpose: Splits.validationPurpose)
        let items = all.map { i in
            PlannedItem(origin: .demo(index: i, seed: seed), label: labels[i], split: test.contains(i) ? .test : (val.contains(i) ? .val : .train),
                        source: "demo:\(i)", concepts: sampleConcepts(label: labels[i], seed: seed, index: i))
        }
        return PreparationPlan(kind: "demo", classes: classes, conceptNames: conceptNames, items: items,
                               provenance: [("generator", "viscoin demo tissue v1"), ("seed", .int(Int64(seed))), ("count", JSONValue(count))])
    }

    // MARK: Drawing

    typealias RGB = (Float, Float, Float)
    static let glass: RGB = (0.95, 0.94, 0.96)
    static let stroma: RGB = (0.93, 0.60, 0.74)
    static let hematoxylin: RGB = (0.36, 0.22, 0.55)
    static let hematoxylinDark: RGB = (0.18, 0.08, 0.34)
    static let fibre: RGB = (0.84, 0.40, 0.60)
    static let mucusColour: RGB = (0.72, 0.72, 0.90)
    static let membrane: RGB = (0.86, 0.56, 0.72)

    /// A float RGB canvas drawn at twice the output size and box-filtered down.
    struct Canvas {
        let size: Int
        var pixels: [Float]
        init(size: Int, fill: RGB) {
            self.size = size
            pixels = [Float](repeating: 0, count: size * size * 3)
            for i in 0..<(size * size) {
                pixels[i * 3] = fill.0
                pixels[i * 3 + 1] = fill.1
                pixels[i * 3 + 2] = fill.2
            }
        }
        @inline(__always) mutating func blend(_ x: Int, _ y: Int, _ c: RGB, _ alpha: Float) {
            guard x >= 0, y >= 0, x < size, y < size, alpha > 0 else { return }
            let i = (y * size + x) * 3, a = min(1, alpha)
            pixels[i] += (c.0 - pixels[i]) * a
            pixels[i + 1] += (c.1 - pixels[i + 1]) * a
            pixels[i + 2] += (c.2 - pixels[i + 2]) * a
        }
        /// A filled ellipse (semi-axes a >= b, angle theta) with a soft edge.
        mutating func ellipse(cx: Double, cy: Double, a: Double, b: Double, theta: Double, colour: RGB, alpha: Float) {
            let r = Int(a.rounded(.up)) + 1
            let (cs, sn) = (cos(theta), sin(theta))
            for y in Int(cy) - r...Int(cy) + r {
                for x in Int(cx) - r...Int(cx) + r {
                    let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
                    let u = (dx * cs + dy * sn) / a, v = (-dx * sn + dy * cs) / b
                    let d = u * u + v * v
                    if d < 1.3 { blend(x, y, colour, alpha * Float(min(1, max(0, (1.3 - d) / 0.3)))) }
                }
            }
        }
        /// A thick line segment.
        mutating func line(x0: Double, y0: Double, x1: Double, y1: Double, width: Double, colour: RGB, alpha: Float) {
            let steps = max(1, Int((hypot(x1 - x0, y1 - y0) * 2).rounded(.up)))
            let r = Int(width.rounded(.up))
            for s in 0...steps {
                let t = Double(s) / Double(steps)
                let px = x0 + (x1 - x0) * t, py = y0 + (y1 - y0) * t
                for y in Int(py) - r...Int(py) + r {
                    for x in Int(px) - r...Int(px) + r {
                        let d = hypot(Double(x) + 0.5 - px, Double(y) + 0.5 - py)
                        if d < width { blend(x, y, colour, alpha * Float(min(1, width - d))) }
                    }
                }
            }
        }
        func downsampled() -> RGBImage {
            let half = size / 2
            var out = [UInt8](repeating: 0, count: half * half * 3)
            for y in 0..<half {
                for x in 0..<half {
                    for c in 0..<3 {
                        var s: Float = 0
                        for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] { s += pixels[((2 * y + dy) * size + 2 * x + dx) * 3 + c] }
                        out[(y * half + x) * 3 + c] = ImageResize.quantize(s / 4 * 255)
                    }
                }
            }
            return RGBImage(width: half, height: half, pixels: out)
        }
    }

    static func mix(_ a: RGB, _ b: RGB, _ t: Float) -> RGB { (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, a.2 + (b.2 - a.2) * t) }

    /// Draws one image of `size` x `size` from its concept vector. `index` seeds the layout.
    public static func render(label: Int, concepts c: [Float], size: Int, index: Int, seed: UInt64 = 0) -> RGBImage {
        precondition(c.count == conceptNames.count, "demo: \(c.count) concept values, expected \(conceptNames.count)")
        let rng = RandomGenerator(seed: seed &+ 0x44454D4F, stream: UInt64(index))
        func u() -> Double { rng.nextDouble() }
        func n() -> Double { (u() + u() + u() + u() - 2) * 1.7 }  // ~N(0, 1)
        let s = Double(size * 2)                 // drawing resolution
        let scale = s / 64                        // concept sizes are given for 64 px patches
        let (density, nSize, elong, dark) = (c[0], c[1], c[2], c[3])
        let (fDensity, fAlign, glands, fat) = (c[4], c[5], c[6], c[7])
        let (mucus, debris, empty, eosin) = (c[8], c[9], c[10], c[11])

        // Ground: glass tinted by eosin where there is tissue.
        var canvas = Canvas(size: size * 2, fill: mix(glass, stroma, eosin * (1 - empty) * 0.85))
        // Low-frequency staining variation.
        let (fx, fy, phase) = (0.5 + u(), 0.5 + u(), u() * 6.28)
        for y in 0..<canvas.size {
            for x in 0..<canvas.size {
                let wave = Float(sin(Double(x) / s * 6.28 * fx + phase) * cos(Double(y) / s * 6.28 * fy))
                canvas.blend(x, y, stroma, max(0, wave) * 0.12 * eosin * (1 - empty))
                canvas.blend(x, y, glass, max(0, -wave) * 0.5 * empty)
            }
        }

        // Mucus: pale blue wisps along random sinusoids.
        let wisps = Int((Double(mucus) * 10).rounded())
        for _ in 0..<wisps {
            let (y0, amp, freq, ph) = (u() * s, (0.05 + 0.1 * u()) * s, 1 + 2 * u(), u() * 6.28)
            var previous: (Double, Double)? = nil
            for k in 0...40 {
                let x = Double(k) / 40 * s, y = y0 + amp * sin(Double(k) / 40 * 6.28 * freq + ph)
                if let (px, py) = previous { canvas.line(x0: px, y0: py, x1: x, y1: y, width: 2.5 * scale, colour: mucusColour, alpha: 0.45 * mucus) }
                previous = (x, y)
            }
        }

        // Fat cells: a Voronoi tessellation whose cells are emptied and outlined.
        if fat > 0.01 {
            let cells = max(3, Int((6 + 6 * u()).rounded()))
            let seeds = (0..<cells).map { _ in (u() * s, u() * s) }
            for y in 0..<canvas.size {
                for x in 0..<canvas.size {
                    var d1 = Double.infinity, d2 = Double.infinity
                    for (sx, sy) in seeds {
                        let d = hypot(Double(x) - sx, Double(y) - sy)
                        if d < d1 { (d1, d2) = (d, d1) } else if d < d2 { d2 = d }
                    }
                    let edge = d2 - d1
                    if edge < 1.5 * scale { canvas.blend(x, y, membrane, fat) } else { canvas.blend(x, y, glass, fat * 0.95) }
                }
            }
        }

        // Fibres: segments around a common direction; alignment narrows the spread.
        let fibreCount = Int((Double(fDensity) * 45).rounded())
        let direction = u() * 3.1416
        for _ in 0..<fibreCount {
            let angle = direction + Double(1 - fAlign) * 1.2 * n()
            let length = (0.25 + 0.35 * u()) * s
            let (cx, cy) = (u() * s, u() * s)
            let wave = Double(1 - fAlign) * 0.15 * s
            let (dx, dy) = (cos(angle), sin(angle))
            var previous: (Double, Double)? = nil
            for k in 0...8 {
                let t = (Double(k) / 8 - 0.5) * length
                let off = wave * sin(Double(k) / 8 * 6.28 + cx)
                let x = cx + dx * t - dy * off, y = cy + dy * t + dx * off
                if let (px, py) = previous { canvas.line(x0: px, y0: py, x1: x, y1: y, width: 0.9 * scale, colour: fibre, alpha: 0.55) }
                previous = (x, y)
            }
        }

        let nucleusColour = mix(hematoxylin, hematoxylinDark, dark)
        func nucleus(_ x: Double, _ y: Double, angle: Double) {
            let radius = (0.8 + 2.6 * Double(nSize)) * scale * (0.8 + 0.4 * u())
            let ratio = 1 + 2.2 * Double(elong)
            canvas.ellipse(cx: x, cy: y, a: radius * ratio.squareRoot(), b: radius / ratio.squareRoot(), theta: angle,
                           colour: nucleusColour, alpha: 0.9)
        }

        // Glands: a white lumen, a pink epithelial ring, nuclei palisading on the ring.
        let glandCount = Int((Double(glands) * 3).rounded())
        for _ in 0..<glandCount {
            let r = (0.14 + 0.08 * u()) * s
            let (gx, gy) = (r + u() * (s - 2 * r), r + u() * (s - 2 * r))
            canvas.ellipse(cx: gx, cy: gy, a: r, b: r * (0.8 + 0.2 * u()), theta: u() * 3.14, colour: stroma, alpha: 0.8)
            canvas.ellipse(cx: gx, cy: gy, a: r * 0.55, b: r * 0.45, theta: u() * 3.14, colour: glass, alpha: 0.95)
            let around = Int(10 + 8 * u())
            for k in 0..<around {
                let a = Double(k) / Double(around) * 6.2832 + 0.2 * n() * Double(1 - glands)
                nucleus(gx + cos(a) * r * 0.8, gy + sin(a) * r * 0.8, angle: a)
            }
        }

        // Free nuclei: density sets the count; aligned with the fibres in aligned tissue.
        let nucleusCount = Int((Double(density) * 110 / (0.6 + Double(nSize))).rounded())
        for _ in 0..<nucleusCount {
            let angle = fAlign > 0.5 ? direction + 0.2 * n() : u() * 3.1416
            nucleus(u() * s, u() * s, angle: angle)
        }

        // Debris: small irregular dark and bright fragments.
        let fragments = Int((Double(debris) * 70).rounded())
        for _ in 0..<fragments {
            let colour = u() < 0.6 ? hematoxylinDark : stroma
            canvas.ellipse(cx: u() * s, cy: u() * s, a: (0.4 + 0.9 * u()) * scale, b: (0.3 + 0.5 * u()) * scale, theta: u() * 3.14,
                           colour: colour, alpha: 0.85)
        }

        // Sensor noise.
        for i in 0..<canvas.pixels.count { canvas.pixels[i] += Float(n()) * 0.012 }
        return canvas.downsampled()
    }
}
