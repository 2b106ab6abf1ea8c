// Bad input against the release binary, table-driven: each case is a command, the phrase its
// message must contain, and a non-zero exit; afterwards the source tree must be exactly as it
// was (file list and bytes) and no OUT.partial may be left. Covers outputs that are, contain or
// lie inside an input (with trailing slashes, `.`, `..` and symlinks), --force on a folder
// prepare did not write, overlapping --root/--test-root, FIFOs given as weight files, dataset
// indexes and checkpoints (refused at once instead of blocking), symlink loops and links leaving
// a class folder, and negative option values.
import Common
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct BadInputTests {
    static let dir: String = {
        let d = "/tmp/viscoin-it-bad-\(UInt64.random(in: 0...UInt64.max))"
        try? Files.createDirectory(d)
        return d
    }()

    /// A small class-folder source (3 classes x 4 PNGs) and a prepared demo set, once.
    static let setup: ProcessResult = {
        let d = dir
        return runShell(".build/release/viscoin prepare demo --out \(d)/demo --count 18 --size 32 && mkdir -p \(d)/src && "
                        + "for c in a b c; do mkdir -p \(d)/src/X/$c; for i in 1 2 3 4; do cp \(d)/demo/00000/img0000000$i.png \(d)/src/X/$c/$i.png; done; done && "
                        + "ln -s \(d)/src/X \(d)/link && mkfifo \(d)/fifo && mkfifo \(d)/fifo-data && mkdir -p \(d)/fifoset && mkfifo \(d)/fifoset/dataset.json && "
                        + "mkdir -p \(d)/notmine && echo keep > \(d)/notmine/notes.txt && "
                        + "mkdir -p \(d)/src/LOOP/a \(d)/src/LEAK/a && cp \(d)/src/X/a/*.png \(d)/src/LOOP/a/ && cp \(d)/src/X/a/*.png \(d)/src/LEAK/a/ && "
                        + "ln -s . \(d)/src/LOOP/a/self && ln -s \(d)/demo/00000 \(d)/src/LEAK/a/more")
    }()

    /// Every file below `path` with its bytes' checksum.
    static func snapshot(_ path: String) -> String {
        runShell("cd \(path) && find . -type f -o -type l | sort | xargs -r md5sum 2>&1").output
    }

    @Test(arguments: [
        // Output is the source, with spellings that normalise to it.
        ("prepare folder --root SRC/X --out SRC/X --force --size 32", "is the same folder as --root"),
        ("prepare folder --root SRC/X --out SRC/X/ --force --size 32", "is the same folder as --root"),
        ("prepare folder --root SRC/X --out SRC/X/. --force --size 32", "is the same folder as --root"),
        ("prepare folder --root SRC/X --out SRC/X/a/.. --force --size 32", "is the same folder as --root"),
        ("prepare folder --root LINK --out SRC/X --force --size 32", "is the same folder as --root"),
        // Output above the source (replacing it would delete the source) or inside it.
        ("prepare folder --root SRC/X --out SRC --force --size 32", "contains --root"),
        ("prepare folder --root SRC/X --out SRC/ --force --size 32", "contains --root"),
        ("prepare folder --root SRC/X --out SRC/X/out --size 32", "lies inside --root"),
        ("prepare folder --root SRC/X --out SRC/X/a/out --size 32", "lies inside --root"),
        ("prepare cub --root SRC/X --out SRC --force", "contains --root"),
        ("prepare folder --root SRC/X/a --test-root SRC/X/b --out SRC/X/b --size 32", "--test-root"),
        ("prepare folder --root SRC/X --test-root SRC/X --out DIR/o1 --size 32", "overlap"),
        ("prepare folder --root SRC/X --test-root SRC/X/a --out DIR/o2 --size 32", "overlap"),
        // Class folders walked without following link loops or leaving the class folder.
        ("prepare folder --root SRC/LOOP --out DIR/o5 --size 32", "already part of the tree"),
        ("prepare folder --root SRC/LEAK --out DIR/o6 --size 32", "symbolic link that leaves"),
        ("train-classifier --data DIR/demo --run DIR/r2 --threads 0", "--threads must be"),
        // --force replaces only a folder prepare wrote.
        ("prepare demo --out DIR/notmine --force --count 9", "not a prepared dataset"),
        ("prepare demo --out DIR/notmine/notes.txt --force --count 9", "not a folder"),
        ("prepare demo --out / --force --count 9", "root folder"),
        // FIFOs are refused at once (they would block the read forever).
        ("inspect DIR/fifo", "FIFO"),
        ("generate --network DIR/fifo --outdir DIR/g1", "FIFO"),
        ("train-classifier --data DIR/fifoset --run DIR/r1 --arch tiny --epochs 1", "FIFO"),
        ("inspect DIR/fifo-data --hash", "FIFO"),
        // Negative numbers are values, then checked by range.
        ("prepare demo --out DIR/o3 --val-fraction -0.5", "--val-fraction must be in [0, 1)"),
        ("prepare demo --out DIR/o4 --size -32", "--size must be a power of two"),
        ("generate --network DIR/demo/dataset.json --outdir DIR/g2 --trunc-cutoff -1", "--trunc-cutoff must be 0 or positive"),
    ])
    func refusedWithANamedErrorAndNothingChanged(_ command: String, _ phrase: String) throws {
        try requireReleaseBinary()
        try #require(Self.setup.status == 0, "setup failed: \(Self.setup.output)")
        let d = Self.dir
        let before = Self.snapshot(d)
        let line = command.replacingOccurrences(of: "SRC", with: "\(d)/src").replacingOccurrences(of: "LINK", with: "\(d)/link")
            .replacingOccurrences(of: "DIR", with: d)
        let r = runShell("timeout 60 .build/release/viscoin \(line)", timeout: 90)
        #expect(r.status != 0 && r.status != 124, "\(line): exit \(r.status) (124 = hung)\n\(r.output)")
        #expect(r.output.contains(phrase), "\(line): the message must contain '\(phrase)':\n\(r.output)")
        #expect(!r.output.contains("Missing value"), "a negative number was not taken as a value: \(r.output)")
        #expect(!r.output.contains("Error: ") && r.output.contains("error: "), "\(line): one error style (`error: ...`):\n\(r.output)")
        #expect(Self.snapshot(d) == before, "\(line) changed files under \(d)")
        let leftovers = runShell("find \(d) -name '*.partial' -o -name '*.replaced'").output
        #expect(leftovers.isEmpty, "left behind: \(leftovers)")
    }

    @Test func forceReplacesAPreparedDatasetItWrote() throws {
        try requireReleaseBinary()
        try #require(Self.setup.status == 0, "setup failed: \(Self.setup.output)")
        let d = Self.dir
        var r = runShell(".build/release/viscoin prepare folder --root \(d)/src/X --out \(d)/prepared/ --size 32 --test-fraction 0.25")
        #expect(r.status == 0 && Files.exists("\(d)/prepared/dataset.json"), "a trailing slash is the same folder: \(r.output)")
        r = runShell(".build/release/viscoin prepare folder --root \(d)/src/X --out \(d)/prepared/ --size 32 --test-fraction 0.25 --force")
        #expect(r.status == 0, "\(r.output)")
        #expect(!Files.exists("\(d)/prepared.partial") && !Files.exists("\(d)/prepared/.partial") && !Files.exists("\(d)/prepared.replaced"))
        #expect(Files.exists("\(d)/src/X/a/1.png"), "the source is untouched")
    }
}
