// prepare cub / folder / demo on generated sources: index contents, splits, encodings, image
// sizes, determinism, and every kind of bad input.
import Common
import Datasets
import ImageCodecs
import Testing

@Suite struct PreparationTests {
    @Test func cubLayout() throws {
        let dir = try temporaryDirectory("cub")
        defer { try? Files.remove(dir) }
        let fixture = try CUBFixture.make(in: dir)
        let plan = try CUBSource.plan(.init(root: fixture.root, valFraction: 0.25, seed: 3))
        let index = try prepare(plan, out: Files.join(dir, "out"))
        #expect(index.classes == CUBFixture.classes)
        #expect(index.items.count == 18)
        #expect(index.count(.test) == 6)          // the official test images
        #expect(index.count(.val) == 3)           // one of the 4 training images of each class
        #expect(index.count(.train) == 9)
        for (item, source) in zip(index.items, fixture.images) {
            #expect(item.label == source.1 - 1)
            #expect(item.source == "images/" + source.0)
            #expect(item.bbox == source.3)
            #expect((item.split == .test) == (source.2 == 0))
        }
        #expect(index.conceptNames == ["has_bill_shape::dagger", "has_wing_color::blue"])
        #expect(index.items[0].concepts == [1, 0] && index.items[1].concepts == [0, 1])
        // The written dataset reads back identically, images at the requested size.
        let dataset = try PreparedDataset(root: Files.join(dir, "out"))
        #expect(dataset.index == index)
        for i in index.items.indices {
            let image = try dataset.image(i)
            #expect(image.width == 32 && image.height == 32)
        }
        #expect(Files.exists(Files.join(dir, "out/preview.png")))
        #expect(!Files.exists(Files.join(dir, "out.partial")))
        // Bounding-box crops differ from the central square.
        let boxed = try prepare(try CUBSource.plan(.init(root: fixture.root, bboxCrop: true, valFraction: 0.25, seed: 3)), out: Files.join(dir, "boxed"))
        #expect(boxed.items.map(\.split) == index.items.map(\.split))
        #expect(try Files.read(Files.join(dir, "boxed/00000/img00000000.png")) != Files.read(Files.join(dir, "out/00000/img00000000.png")))
    }

    @Test func splitsAreSeededAndStratified() throws {
        let dir = try temporaryDirectory("split")
        defer { try? Files.remove(dir) }
        let fixture = try CUBFixture.make(in: dir, attributes: false)
        let a = try CUBSource.plan(.init(root: fixture.root, valFraction: 0.5, seed: 1)).items.map(\.split)
        let b = try CUBSource.plan(.init(root: fixture.root, valFraction: 0.5, seed: 1)).items.map(\.split)
        #expect(a == b)
        let seeds = try (2..<8).map { try CUBSource.plan(.init(root: fixture.root, valFraction: 0.5, seed: UInt64($0))).items.map(\.split) }
        #expect(seeds.contains { $0 != a })
        // Half of each class's 4 training images.
        for c in 0..<3 { #expect(a[(c * 6)..<(c * 6 + 6)].filter { $0 == .val }.count == 2) }
    }

    @Test func classFoldersWithAllEncodings() throws {
        let dir = try temporaryDirectory("folders")
        defer { try? Files.remove(dir) }
        let train = try makeClassFolders(in: Files.join(dir, "train"), perClass: 10)
        let test = try makeClassFolders(in: Files.join(dir, "test"), classes: ["ADI", "TUM"], perClass: 4)
        let plan = try ClassFolderSource.plan(.init(root: train, testRoot: test, valFraction: 0.2, seed: 0))
        let index = try prepare(plan, out: Files.join(dir, "out"), size: 16)
        #expect(index.classes == ["ADI", "LYM", "TUM"])
        #expect(index.count(.test) == 8 && index.count(.val) == 6 && index.count(.train) == 24)
        #expect(index.items.filter { $0.split == .test }.allSatisfy { $0.source.hasPrefix("test:") })
        #expect(Set(index.items.filter { $0.split == .test }.map(\.label)) == [0, 2])
        // Without a test root: a stratified test split of the root.
        let alone = try ClassFolderSource.plan(.init(root: train, valFraction: 0.1, testFraction: 0.2, seed: 0))
        #expect(alone.items.filter { $0.split == .test }.count == 6)
        // A uniform grey PNG stays grey after conversion and resizing.
        let dataset = try PreparedDataset(root: Files.join(dir, "out"))
        let greyIndex = index.items.firstIndex { $0.source == "ADI/p3.png" }!
        let grey = try dataset.image(greyIndex)
        #expect(grey.pixels.allSatisfy { $0 == 120 })
    }

    @Test func demoIsDeterministicAndBalanced() throws {
        let dir = try temporaryDirectory("demo")
        defer { try? Files.remove(dir) }
        let a = try prepare(DemoTissue.plan(count: 90, seed: 5, valFraction: 0.1, testFraction: 0.1), out: Files.join(dir, "a"))
        let b = try prepare(DemoTissue.plan(count: 90, seed: 5, valFraction: 0.1, testFraction: 0.1), out: Files.join(dir, "b"))
        let c = try prepare(DemoTissue.plan(count: 90, seed: 6, valFraction: 0.1, testFraction: 0.1), out: Files.join(dir, "c"))
        #expect(a == b)
        for item in a.items {
            #expect(try Files.read(Files.join(dir, "a/" + item.file)) == Files.read(Files.join(dir, "b/" + item.file)))
        }
        #expect(try Files.read(Files.join(dir, "a/00000/img00000004.png")) != Files.read(Files.join(dir, "c/00000/img00000004.png")))
        #expect(a.classes.count == 9 && a.conceptNames.count == 12)
        for label in 0..<9 {
            #expect(a.items.filter { $0.label == label }.count == 10)
            #expect(a.items.filter { $0.label == label && $0.split == .test }.count == 1)
        }
        // Concepts are inside their class ranges and survive the JSON round trip exactly.
        let reread = try PreparedDataset(root: Files.join(dir, "a"))
        #expect(reread.index.items.map(\.concepts) == a.items.map(\.concepts))
        let lym = a.items.filter { $0.label == 3 }.map { $0.concepts![0] }
        let adi = a.items.filter { $0.label == 0 }.map { $0.concepts![0] }
        #expect(lym.min()! > adi.max()!)  // lymphocyte patches are denser in nuclei than fat
    }

    @Test func badInputIsNamedOrSkipped() throws {
        let dir = try temporaryDirectory("bad")
        defer { try? Files.remove(dir) }
        let root = try makeClassFolders(in: Files.join(dir, "src"), perClass: 4)
        // A truncated PNG, a file that is not an image, and an image that is too small.
        let good = try Files.read(Files.join(root, "ADI/p0.png"))
        try Files.writeAtomically(Files.join(root, "ADI/truncated.png"), bytes: Array(good.prefix(good.count / 2)))
        try Files.writeAtomically(Files.join(root, "LYM/notanimage.jpg"), text: "hello")
        try Files.writeAtomically(Files.join(root, "TUM/tiny.png"), bytes: try ImageCodec.encodePNG(testPicture(width: 8, height: 8, seed: 1)))
        let plan = try ClassFolderSource.plan(.init(root: root, seed: 0))
        let out = Files.join(dir, "out")
        do {
            _ = try prepare(plan, out: out)
            Issue.record("bad images were accepted")
        } catch let error as DatasetError {
            let text = error.description
            #expect(text.contains("3 source image(s)") && text.contains("truncated.png") && text.contains("notanimage.jpg")
                    && text.contains("too small") && text.contains("--skip-bad"), "\(text)")
        }
        #expect(!Files.exists(out) && !Files.exists(out + ".partial"))
        let index = try prepare(plan, out: out, skipBad: true)
        #expect(index.items.count == 12 && index.skipped.count == 3)
        #expect(try Files.readText(Files.join(out, "skipped.txt")).contains("tiny.png"))
        // OUT exists: refused without --force, replaced with it.
        #expect(throws: DatasetError.self) { try prepare(plan, out: out, skipBad: true) }
        #expect(try prepare(plan, out: out, skipBad: true, force: true).items.count == 12)

        // An empty class folder.
        try Files.createDirectory(Files.join(root, "EMPTY"))
        #expect { try ClassFolderSource.plan(.init(root: root)) } throws: { ($0 as? DatasetError)?.description.contains("EMPTY") == true }
        #expect(try ClassFolderSource.plan(.init(root: root, skipBad: true)).skipped.count == 1)
        // Missing folders.
        #expect { try ClassFolderSource.plan(.init(root: Files.join(dir, "nope"))) } throws: { "\($0)".contains("nope") }
        #expect { try PreparedDataset(root: Files.join(dir, "nope")) } throws: { "\($0)".contains("no such dataset folder") }
    }

    @Test func badCUBMetadata() throws {
        let dir = try temporaryDirectory("badcub")
        defer { try? Files.remove(dir) }
        let fixture = try CUBFixture.make(in: dir, attributes: false)
        let labels = Files.join(fixture.root, "image_class_labels.txt")
        let original = try Files.readText(labels)
        // Label out of range.
        try Files.writeAtomically(labels, text: original.replacing("2 1\n", with: "2 7\n", maxReplacements: 1))
        #expect { try CUBSource.plan(.init(root: fixture.root)) } throws: {
            "\($0)".contains("image_class_labels.txt") && "\($0)".contains("label 7 of image 2 is out of range")
        }
        let skipping = try CUBSource.plan(.init(root: fixture.root, skipBad: true))
        #expect(skipping.items.count == 17 && skipping.skipped.count == 1)
        // Malformed line.
        try Files.writeAtomically(labels, text: original + "banana\n")
        #expect { try CUBSource.plan(.init(root: fixture.root)) } throws: { "\($0)".contains("image_class_labels.txt: line 19") }
        // Missing metadata file.
        try Files.remove(labels)
        #expect { try CUBSource.plan(.init(root: fixture.root)) } throws: { "\($0)".contains("image_class_labels.txt: missing") }
        // A listed image file that does not exist.
        try Files.writeAtomically(labels, text: original)
        try Files.remove(Files.join(fixture.root, "images/" + fixture.images[4].0))
        #expect { try CUBSource.plan(.init(root: fixture.root)) } throws: { "\($0)".contains("missing image file") }
    }

    @Test func tamperedIndexIsRejected() throws {
        let cases: [(String, String)] = [
            ("{}", "no \"viscoin\" index"),
            (#"{"viscoin": {"format": "viscoin-dataset", "version": 9}}"#, "unsupported dataset format version 9"),
            (#"{"viscoin": {"format": "viscoin-dataset", "version": 1, "kind": "x", "resolution": 32, "classes": ["a"], "items": [{"file": "../x.png", "label": 0, "split": "train"}]}}"#, "leaves the dataset folder"),
            (#"{"viscoin": {"format": "viscoin-dataset", "version": 1, "kind": "x", "resolution": 32, "classes": ["a"], "items": [{"file": "a.png", "label": 3, "split": "train"}]}}"#, "label 3 is out of range"),
            (#"{"viscoin": {"format": "viscoin-dataset", "version": 1, "kind": "x", "resolution": 32, "classes": ["a"], "items": [{"file": "a.png", "label": 0, "split": "train"}, {"file": "a.png", "label": 0, "split": "train"}]}}"#, "listed twice"),
            ("{\"viscoin\": [", "invalid JSON"),
        ]
        for (text, expected) in cases {
            #expect { try DatasetIndex.parse(Array(text.utf8), path: "D/dataset.json") } throws: {
                "\($0)".contains("D/dataset.json") && "\($0)".contains(expected)
            }
        }
    }
}

