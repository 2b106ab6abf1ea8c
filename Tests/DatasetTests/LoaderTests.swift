// The loader: shards for several world sizes, per-epoch shuffling, resume positions,
// background prefetch equal to inline loading, transforms against the interpolate goldens and
// torchvision's crop rules, the ImageNet normalisation.
import Common
import Datasets
import ImageCodecs
import TensorCore
import TestSupport
import Testing

@Suite(.serialized) struct LoaderTests {
    static let root: String = {
        let dir = "/tmp/viscoin-dt-loader-\(UInt64.random(in: 0...UInt64.max))"
        try! Files.createDirectory(dir)
        _ = try! prepare(DemoTissue.plan(count: 47, seed: 1, valFraction: 0, testFraction: 0), out: Files.join(dir, "demo"), size: 16)
        return Files.join(dir, "demo")
    }()

    func loader(rank: Int = 0, world: Int = 1, _ options: LoaderOptions) throws -> DataLoader {
        try DataLoader(dataset: try PreparedDataset(root: Self.root), splits: [.train], rank: rank, worldSize: world, options: options)
    }

    @Test(arguments: [1, 2, 3, 5]) func shardsAreDisjointAndCoverEverything(world: Int) throws {
        let options = LoaderOptions(batchSize: 4, seed: 9)
        let loaders = try (0..<world).map { try loader(rank: $0, world: world, options) }
        let n = 47, shard = (n + world - 1) / world
        for epoch in 0..<2 {
            let order = loaders[0].epochOrder(epoch)
            #expect(order.count == shard * world)
            #expect(Set(order.prefix(n)) == Set(0..<n))            // a permutation, then padding
            var seen: [Int] = []
            for l in loaders {
                #expect(l.epochOrder(epoch) == order)                 // every rank agrees
                let positions = l.shardPositions()
                #expect(positions.count == shard)
                seen += positions
            }
            #expect(seen.sorted() == Array(0..<(shard * world)))     // disjoint positions, all covered
        }
        #expect(loaders[0].epochOrder(0) != loaders[0].epochOrder(1))  // reshuffled each epoch
    }

    @Test func paddingIsFlaggedAndBatchesCountRight() throws {
        let l = try loader(rank: 4, world: 5, LoaderOptions(batchSize: 4, seed: 2))
        #expect(l.shardSize == 10 && l.batchesPerEpoch == 3)
        var flags: [Bool] = [], count = 0
        let stream = l.batches(epoch: 0)
        while let batch = try stream.next() {
            flags += batch.isPadding
            count += batch.count
            #expect(batch.images.shape == [batch.count, 3, 16, 16])
            #expect(batch.concepts?.shape == [batch.count, 12])
        }
        #expect(count == 10 && flags.filter { $0 }.count == 1)   // positions 47, 48, 49 pad; rank 4 holds 49
        let dropping = try loader(rank: 4, world: 5, LoaderOptions(batchSize: 4, seed: 2, dropLast: true))
        #expect(dropping.batchesPerEpoch == 2)
    }

    @Test func resumeAndPrefetchGiveTheSameBatches() throws {
        let options = LoaderOptions(batchSize: 5, seed: 4, transform: .classifierTrain, workers: 2, prefetch: 3)
        let l = try loader(rank: 1, world: 2, options)
        var all: [[Float]] = []
        let stream = l.batches(epoch: 3)
        while let batch = try stream.next() { all.append(batch.images.toArray() + batch.labels.map(Float.init)) }
        #expect(all.count == l.batchesPerEpoch)
        // Resume at batch 2, inline loading, a different worker count: identical batches.
        var inline = options
        inline.workers = 0
        let resumed = try loader(rank: 1, world: 2, inline).batches(epoch: 3, from: 2)
        var k = 2
        while let batch = try resumed.next() {
            #expect(batch.images.toArray() + batch.labels.map(Float.init) == all[k])
            k += 1
        }
        #expect(k == all.count)
        // Another epoch draws other crops.
        #expect(try l.loadBatch(epoch: 4, batch: 0).images.toArray() != all[0].prefix(5 * 3 * 256).map { $0 })
        // Values are in [-1, 1].
        #expect(all.flatMap { $0.dropLast(5) }.allSatisfy { $0 >= -1 && $0 <= 1 })
    }

    @Test func cacheDoesNotChangeBatches() throws {
        var options = LoaderOptions(batchSize: 8, seed: 1, transform: .plain(flipProbability: 0.5))
        let plain = try loader(options).loadBatch(epoch: 0, batch: 1).images.toArray()
        options.cacheDecoded = true
        let cached = try loader(options)
        _ = try cached.loadBatch(epoch: 0, batch: 1)
        #expect(try cached.loadBatch(epoch: 0, batch: 1).images.toArray() == plain)
    }

    @Test func corruptImageAtLoadTimeNamesTheFile() throws {
        let dir = try temporaryDirectory("corrupt")
        defer { try? Files.remove(dir) }
        _ = try prepare(DemoTissue.plan(count: 9, seed: 1, valFraction: 0, testFraction: 0), out: Files.join(dir, "d"), size: 8)
        try Files.writeAtomically(Files.join(dir, "d/00000/img00000003.png"), text: "garbage")
        let l = try DataLoader(dataset: try PreparedDataset(root: Files.join(dir, "d")), splits: [.train],
                               options: LoaderOptions(batchSize: 9, shuffle: false))
        #expect { try l.batches(epoch: 0).next() } throws: { "\($0)".contains("img00000003.png") }
    }

    // MARK: Transforms

    /// The resampler of the transforms equals F.interpolate (the golden cases) on float input.
    @Test(arguments: ["interpolate_bilinear_down_32to13_aa", "interpolate_bilinear_up_7to15_aa", "interpolate_bilinear_down_32to13",
                      "interpolate_bilinear_11x9_to_17x23"])
    func resamplingMatchesInterpolateGoldens(name: String) throws {
        let g = try GoldenCase("ops/\(name)")
        // The resampler is checked forward only; the op's gradients are OpGoldenTests' part.
        defer { record(g.uncheckedKeys(exempt: Set(g.keys(withPrefix: "grad.")))) }
        let x = try g.tensor("input.x"), expected = try g.tensor("output.y")
        let antialias = g.config["antialias"]?.boolValue ?? false
        let (h, w, oh, ow) = (x.shape[2], x.shape[3], expected.shape[2], expected.shape[3])
        let planes = x.shape[0] * x.shape[1]
        let out = Tensor(uninitializedShape: expected.shape)
        for p in 0..<planes {
            ImageResize.resamplePlanar(x.data + p * h * w, channels: 1, rowStride: w, crop: CropBox(x: 0, y: 0, width: w, height: h),
                                       width: ow, height: oh, antialias: antialias, into: out.data + p * oh * ow)
        }
        #expect(g.check("output.y", out) == nil)
        // Bitwise the same arithmetic as the tensor op.
        #expect(out.toArray() == x.interpolate(size: (oh, ow), antialias: antialias).toArray())
    }

    @Test func randomResizedCropFollowsTorchvision() {
        let rng = RandomGenerator(seed: 1)
        for _ in 0..<2000 {
            let box = ImageTransform.randomResizedCropBox(width: 256, height: 200, scale: 0.08...1, ratio: 0.75...(4.0 / 3.0), rng: rng)
            #expect(box.x >= 0 && box.y >= 0 && box.x + box.width <= 256 && box.y + box.height <= 200)
            let area = Double(box.width * box.height) / Double(256 * 200)
            #expect(area >= 0.06 && area <= 1.0)
        }
        // Impossible scales fall back to the central crop with the ratio clamped.
        let fallback = ImageTransform.randomResizedCropBox(width: 300, height: 100, scale: 5...6, ratio: 0.75...(4.0 / 3.0), rng: rng)
        #expect(fallback == CropBox(x: 83, y: 0, width: 133, height: 100))
    }

    @Test func centerCropTransformOfASquareImage() {
        // Resize(292) + CenterCrop(256) of 256 px = the central 256/292 of the image, zoomed.
        let image = testPicture(width: 64, height: 64, seed: 3)
        var out = [Float](repeating: 0, count: 3 * 56 * 56)
        out.withUnsafeMutableBufferPointer {
            ImageTransform.classifierTest.apply(image, size: 56, rng: RandomGenerator(seed: 0), into: $0.baseAddress!)
        }
        // int(56 / 0.875) = 64: no resize, crop offset 4.
        for c in 0..<3 {
            for y in [0, 20, 55] {
                for x in [0, 31, 55] {
                    let expected = Float(image.pixels[((y + 4) * 64 + x + 4) * 3 + c]) / 127.5 - 1
                    #expect(out[(c * 56 + y) * 56 + x] == expected)
                }
            }
        }
    }

    @Test func flipMirrorsAndPlainIsExact() {
        let image = testPicture(width: 8, height: 8, seed: 2)
        var a = [Float](repeating: 0, count: 192), b = a
        a.withUnsafeMutableBufferPointer { ImageTransform.plain(flipProbability: 0).apply(image, size: 8, rng: RandomGenerator(seed: 0), into: $0.baseAddress!) }
        b.withUnsafeMutableBufferPointer { ImageTransform.plain(flipProbability: 1).apply(image, size: 8, rng: RandomGenerator(seed: 0), into: $0.baseAddress!) }
        for c in 0..<3 {
            for y in 0..<8 {
                for x in 0..<8 {
                    #expect(a[(c * 8 + y) * 8 + x] == Float(image.pixels[(y * 8 + x) * 3 + c]) / 127.5 - 1)
                    #expect(b[(c * 8 + y) * 8 + x] == a[(c * 8 + y) * 8 + 7 - x])
                }
            }
        }
    }

    @Test func imagenetNormalisationAndItsGradient() {
        let x = Tensor([-1, 0, 1, 0.5, -0.5, 0.25], shape: [1, 3, 1, 2]).requiringGrad()
        let y = imagenetNormalized(x)
        let values = y.toArray()
        #expect(abs(values[0] - (0 - 0.485) / 0.229) < 1e-6)
        #expect(abs(values[5] - (0.625 - 0.406) / 0.225) < 1e-6)
        y.sum().backward()
        let g = x.grad!.toArray()
        #expect(abs(g[0] - 0.5 / 0.229) < 1e-5 && abs(g[3] - 0.5 / 0.224) < 1e-5)
    }
}
