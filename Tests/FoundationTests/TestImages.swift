// Hand-built image files for decoder tests: PNG (every colour type and bit depth, zlib
// "stored" blocks) and baseline uncompressed TIFF, written without the codecs under test.

enum TestImages {
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var table = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            table[i] = c
        }
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes {
            a = (a + UInt32(x)) % 65521
            b = (b + a) % 65521
        }
        return (b << 16) | a
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    static func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 24) & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    /// zlib stream with stored (uncompressed) deflate blocks.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, data.count - offset)
            let final: UInt8 = offset + n == data.count ? 1 : 0
            out.append(final)
            out += le16(n) + le16(n ^ 0xFFFF)
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        return out + be32(adler32(data))
    }

    /// A PNG with `colorType` (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA) and `bitDepth`;
    /// `rows` are the unfiltered sample bytes of each row (big-endian for 16-bit).
    static func png(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]], palette: [UInt8]? = nil) -> [UInt8] {
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [bitDepth, colorType, 0, 0, 0])
        if let palette { out += chunk("PLTE", palette) }
        var raw: [UInt8] = []
        for row in rows { raw += [0] + row }  // filter type 0
        out += chunk("IDAT", zlibStored(raw))
        out += chunk("IEND", [])
        return out
    }

    /// A little-endian baseline TIFF, uncompressed, one strip, `samples` per pixel (1 or 3).
    static func tiff(width: Int, height: Int, samples: Int, pixels: [UInt8]) -> [UInt8] {
        let dataOffset = 8
        let dataSize = pixels.count
        var ifdOffset = dataOffset + dataSize
        if ifdOffset % 2 == 1 { ifdOffset += 1 }
        let entries = 10
        let bitsOffset = ifdOffset + 2 + entries * 12 + 4
        var out: [UInt8] = [0x49, 0x49, 42, 0] + le32(ifdOffset)
        out += pixels
        while out.count < ifdOffset { out.append(0) }
        func entry(_ tag: Int, _ type: Int, _ count: Int, _ value: Int) -> [UInt8] {
            le16(tag) + le16(type) + le32(count) + (type == 3 && count == 1 ? le16(value) + [0, 0] : le32(value))
        }
        out += le16(entries)
        out += entry(256, 4, 1, width)                       // ImageWidth
        out += entry(257, 4, 1, height)                      // ImageLength
        out += samples == 3 ? entry(258, 3, 3, bitsOffset) : entry(258, 3, 1, 8)  // BitsPerSample
        out += entry(259, 3, 1, 1)                           // Compression: none
        out += entry(262, 3, 1, samples == 3 ? 2 : 1)        // Photometric: RGB / BlackIsZero
        out += entry(273, 4, 1, dataOffset)                  // StripOffsets
        out += entry(277, 3, 1, samples)                     // SamplesPerPixel
        out += entry(278, 4, 1, height)                      // RowsPerStrip
        out += entry(279, 4, 1, dataSize)                    // StripByteCounts
        out += entry(284, 3, 1, 1)                           // PlanarConfiguration: contiguous
        out += le32(0)
        if samples == 3 { out += le16(8) + le16(8) + le16(8) }
        return out
    }
}
