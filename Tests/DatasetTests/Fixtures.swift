// Source datasets written by the tests: a CUB-layout folder and a class-folder set, with images
// in every supported encoding (RGB/grey/CMYK JPEG, RGB/grey PNG, uncompressed TIFF).
import Common
import Communication
import Datasets
import ImageCodecs

func temporaryDirectory(_ name: String) throws -> String {
    let dir = "/tmp/viscoin-dt-\(name)-\(UInt64.random(in: 0...UInt64.max))"
    try Files.createDirectory(dir)
    return dir
}

/// A smooth test picture whose colours depend on `seed`.
func testPicture(width: Int, height: Int, seed: Int) -> RGBImage {
    RGBImage(width: width, height: height) { x, y in
        (UInt8((x * 255 / max(1, width - 1) + seed * 37) % 256), UInt8((y * 255 / max(1, height - 1) + seed * 11) % 256),
         UInt8((x + y + seed * 53) % 256))
    }
}

/// A minimal little-endian, uncompressed, single-strip RGB TIFF.
func encodeTIFF(_ image: RGBImage) -> [UInt8] {
    var out: [UInt8] = []
    func u16(_ v: Int) { out += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    func u32(_ v: Int) { out += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 24) & 0xFF)] }
    let entries = 9
    let ifdSize = 2 + entries * 12 + 4
    let bitsOffset = 8 + ifdSize, dataOffset = bitsOffset + 6
    out += [0x49, 0x49]; u16(42); u32(8)
    u16(entries)
    func entry(_ tag: Int, _ type: Int, _ count: Int, _ value: Int) {
        u16(tag); u16(type); u32(count)
        if type == 3 && count == 1 { u16(value); u16(0) } else { u32(value) }
    }
    entry(256, 3, 1, image.width)
    entry(257, 3, 1, image.height)
    entry(258, 3, 3, bitsOffset)
    entry(259, 3, 1, 1)
    entry(262, 3, 1, 2)
    entry(273, 4, 1, dataOffset)
    entry(277, 3, 1, 3)
    entry(278, 3, 1, image.height)
    entry(279, 4, 1, image.pixels.count)
    u32(0)
    u16(8); u16(8); u16(8)
    out += image.pixels
    return out
}

struct CUBFixture {
    let root: String
    /// (relative path, class 1-based, is_train, bbox)
    let images: [(String, Int, Int, [Double])]
    static let classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]

    /// 3 classes x 6 images (4 train, 2 test), mixed encodings and sizes.
    static func make(in dir: String, attributes: Bool = true) throws -> CUBFixture {
        let root = Files.join(dir, "CUB_200_2011")
        var images: [(String, Int, Int, [Double])] = []
        for (c, name) in classes.enumerated() {
            try Files.createDirectory(Files.join(root, "images/\(name)"))
            for k in 0..<6 {
                let w = 60 + 7 * k, h = 48 + 5 * c
                let picture = testPicture(width: w, height: h, seed: c * 10 + k)
                let relative = "\(name)/\(name.dropFirst(4))_\(k).jpg"
                let bytes: [UInt8]
                switch k % 3 {
                case 0: bytes = try ImageCodec.encodeJPEG(picture)
                case 1: bytes = try ImageCodec.encodeGreyJPEG(Array(picture.pixels.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)), width: w, height: h)
                default:
                    let cmyk = picture.pixels.enumerated().flatMap { i, v -> [UInt8] in i % 3 == 2 ? [v, 255 - v, 128, 0] : [] }
                    bytes = try ImageCodec.encodeCMYKJPEG(cmyk.count == w * h * 4 ? cmyk : [UInt8](repeating: 100, count: w * h * 4), width: w, height: h)
                }
                try Files.writeAtomically(Files.join(root, "images/" + relative), bytes: bytes)
                images.append((relative, c + 1, k < 4 ? 1 : 0, [Double(5 + k), 4, Double(30 + k), 20]))
            }
        }
        func write(_ name: String, _ lines: [String]) throws {
            try Files.writeAtomically(Files.join(root, name), text: lines.joined(separator: "\n") + "\n")
        }
        try write("classes.txt", classes.enumerated().map { "\($0.offset + 1) \($0.element)" })
        try write("images.txt", images.enumerated().map { "\($0.offset + 1) \($0.element.0)" })
        try write("image_class_labels.txt", images.enumerated().map { "\($0.offset + 1) \($0.element.1)" })
        try write("train_test_split.txt", images.enumerated().map { "\($0.offset + 1) \($0.element.2)" })
        try write("bounding_boxes.txt", images.enumerated().map { i, e in "\(i + 1) " + e.3.map { "\($0)" }.joined(separator: " ") })
        if attributes {
            try Files.createDirectory(Files.join(root, "attributes"))
            try write("attributes/attributes.txt", ["1 has_bill_shape::dagger", "2 has_wing_color::blue"])
            var lines: [String] = []
            for i in 1...images.count {
                lines.append("\(i) 1 \(i % 2) 3 1.0")
                lines.append("\(i) 2 \((i / 2) % 2) 3 2.5 extra")
            }
            try write("attributes/image_attribute_labels.txt", lines)
        }
        return CUBFixture(root: root, images: images)
    }
}

/// Class folders with PNG (RGB, grey), JPEG and TIFF images; `testRoot` optionally.
func makeClassFolders(in dir: String, classes: [String] = ["ADI", "LYM", "TUM"], perClass: Int = 6, size: Int = 40) throws -> String {
    for (c, name) in classes.enumerated() {
        let folder = Files.join(dir, name)
        try Files.createDirectory(folder)
        for k in 0..<perClass {
            let picture = testPicture(width: size + k, height: size, seed: c * 100 + k)
            switch k % 4 {
            case 0: try Files.writeAtomically(Files.join(folder, "p\(k).png"), bytes: try ImageCodec.encodePNG(picture))
            case 1: try Files.writeAtomically(Files.join(folder, "p\(k).tif"), bytes: encodeTIFF(picture))
            case 2: try Files.writeAtomically(Files.join(folder, "p\(k).jpeg"), bytes: try ImageCodec.encodeJPEG(picture))
            default:
                try Files.writeAtomically(Files.join(folder, "p\(k).png"),
                                          bytes: try ImageCodec.encodeGreyPNG([UInt8](repeating: UInt8((40 * k) % 256), count: (size + k) * size), width: size + k, height: size))
            }
        }
    }
    return dir
}

func prepare(_ plan: PreparationPlan, out: String, size: Int = 32, skipBad: Bool = false, force: Bool = false) throws -> DatasetIndex {
    try Preparation.write(plan, options: PrepareOptions(output: out, size: size, skipBad: skipBad, force: force), communicator: SingleProcessCommunicator(), log: { _ in })
}
