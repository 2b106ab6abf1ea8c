// The concept explorer as a user runs it: `viscoin explore` on a short VisCoIN run of the demo
// set, on loopback with a free port. API tests over raw sockets (valid and malformed requests,
// body limits, uploads, concurrent requests, clients that disconnect mid-request), the server
// listening on loopback only, a clean stop on SIGTERM; a browser test in headless Chromium that
// loads the page, moves a slider and checks that the image and the prediction changed (the
// screenshot is kept in .build/test-artifacts/explorer.png); and `viscoin heatmaps`.
import Common
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 exchange over a fresh connection (`Connection: close`): status and body.
struct HTTPReply {
    var status: Int
    var headers: String
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONValue.parse(body) }
}

func connectLoopback(_ port: Int, address: String = "127.0.0.1") -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var timeout = timeval(tv_sec: 30, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    // A server that answers early (413) and stops reading must not block the sender forever.
    var sendTimeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, address, &addr.sin_addr)
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    if ok != 0 { close(fd); return nil }
    return fd
}

func sendAll(_ fd: Int32, _ bytes: [UInt8]) {
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { return }
        sent += n
    }
}

func http(_ port: Int, _ method: String, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json",
          extraHeaders: String = "") -> HTTPReply {
    guard let fd = connectLoopback(port) else { return HTTPReply(status: -1, headers: "", body: Array("cannot connect".utf8)) }
    defer { close(fd) }
    var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n" + extraHeaders
    if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
    sendAll(fd, Array((head + "\r\n").utf8) + (body ?? []))
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)) else { return HTTPReply(status: -2, headers: "", body: response) }
    let headers = String(decoding: response[..<split.lowerBound], as: UTF8.self)
    let status = Int(headers.split(separator: " ").dropFirst().first ?? "") ?? -3
    var body = Array(response[split.upperBound...])
    if headers.lowercased().contains("transfer-encoding: chunked") { body = dechunk(body) }
    return HTTPReply(status: status, headers: headers, body: body)
}

func dechunk(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [], i = 0
    while i < data.count, let end = data[i...].firstRange(of: Array("\r\n".utf8)) {
        guard let size = Int(String(decoding: data[i..<end.lowerBound], as: UTF8.self), radix: 16), size > 0 else { break }
        out += data[end.upperBound..<min(data.count, end.upperBound + size)]
        i = end.upperBound + size + 2
    }
    return out
}

func post(_ port: Int, _ path: String, _ json: String) -> HTTPReply { http(port, "POST", path, body: Array(json.utf8)) }

/// A running `viscoin explore`.
final class ExplorerProcess {
    let process = Process()
    let log: String
    var port = 0

    init(viscoin: String, data: String, extra: [String] = []) throws {
        log = "/tmp/viscoin-it-explore-\(UInt64.random(in: 0...UInt64.max)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: "\(repositoryRoot)/.build/release/viscoin")
        process.arguments = ["explore", "--viscoin", viscoin, "--data", data, "--port", "0", "--threads", "1"] + extra
        let handle = FileHandle(forWritingAtPath: log)!
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let start = Console.now()
        while Console.now() - start < 120 {
            let text = (try? Files.readText(log)) ?? ""
            if let range = text.range(of: "serving http://127.0.0.1:") {
                port = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
                return
            }
            if !process.isRunning { break }
            usleep(100_000)
        }
        throw ExplorerStartError(output: (try? Files.readText(log)) ?? "")
    }

    var output: String { (try? Files.readText(log)) ?? "" }

    /// SIGTERM, then the exit status (nil: still running after 20 s, then killed).
    func stop() -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        let start = Console.now()
        while process.isRunning && Console.now() - start < 20 { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit(); return nil }
        return process.terminationStatus
    }
}

struct ExplorerStartError: Error, CustomStringConvertible {
    let output: String
    var description: String { "viscoin explore did not start:\n\(output)" }
}

@Suite(.serialized) struct ExplorerTests {
    /// Concepts of the short run (as in the demo: with 8, sparsity can switch every concept off).
    static let concepts = 32
    /// A short VisCoIN run on the VisCoIN tests' data, classifier and generator.
    static let run: ProcessResult = {
        let setup = VisCoINJobTests.setup
        guard setup.status == 0 else { return setup }
        let d = VisCoINJobTests.dir
        return runShell(".build/release/viscoin train-viscoin --classifier \(d)/f/classifier.safetensors --generator \(d)/gan/G_ema.safetensors "
                        + "--data \(d)/demo --run \(d)/explore --concepts \(concepts) --latent-channels 16 --batch-size 8 --iterations 60 --lr 2e-3 "
                        + "--cd-fid-iteration 10 --test-every 1000 --log-every 30", timeout: 900)
    }()
    static var viscoin: String { "\(VisCoINJobTests.dir)/explore/viscoin.safetensors" }
    static var data: String { "\(VisCoINJobTests.dir)/demo" }

    func start() throws -> ExplorerProcess {
        try requireReleaseBinary()
        try #require(Self.run.status == 0, "the VisCoIN run failed: \(Self.run.output)")
        return try ExplorerProcess(viscoin: Self.viscoin, data: Self.data)
    }

    @Test func apiAnswersValidRequestsAndRejectsBadOnes() throws {
        let server = try start()
        defer { _ = server.stop() }
        let port = server.port
        #expect(server.output.contains("serving http://127.0.0.1:"))

        let page = http(port, "GET", "/")
        #expect(page.status == 200 && page.text.contains("VisCoIN concept explorer") && !page.text.contains("http://") && !page.text.contains("https://"),
                "the page must load no external resources")
        let info = http(port, "GET", "/api/info").json
        let classes = info?["classes"]?.arrayValue?.count ?? 0, tests = Int(info?["test_images"]?.intValue ?? 0)
        #expect(classes == 9 && info?["concepts"]?.intValue == Int64(Self.concepts) && info?["resolution"]?.intValue == 32 && tests > 10, "\(String(describing: info))")

        let list = http(port, "GET", "/api/images?class=3&limit=5").json
        let listed = list?["images"]?.arrayValue ?? []
        #expect(!listed.isEmpty && listed.count <= 5 && listed.allSatisfy { $0["label"]?.intValue == 3 })
        for (path, status) in [("/api/images?class=9", 400), ("/api/images?class=x", 400), ("/api/images?limit=0", 400), ("/api/images?offset=-1", 400),
                               ("/api/image/\(tests)", 404), ("/api/image/-1", 404), ("/api/image/abc", 400), ("/api/nothing", 404)] {
            let r = http(port, "GET", path)
            #expect(r.status == status && r.json?["error"]?.stringValue != nil, "\(path): \(r.status) \(r.text)")
        }
        let thumbnail = http(port, "GET", "/api/image/0")
        #expect(thumbnail.status == 200 && thumbnail.body.starts(with: [0x89, 0x50, 0x4E, 0x47]) && thumbnail.headers.lowercased().contains("image/png"))

        // Predict, regenerate (multipliers and absolute values), heatmaps.
        let analysis = try #require(post(port, "/api/predict", #"{"image": 0}"#).json)
        let concepts = analysis["concepts"]?.arrayValue ?? []
        let listedConcepts = Int(info?["listed_concepts"]?.intValue ?? 0)
        #expect(listedConcepts > 0 && concepts.count == min(listedConcepts, Self.concepts) && concepts.allSatisfy { ($0["top_images"]?.arrayValue?.count ?? 0) > 0 })
        #expect(analysis["reconstruction"]?["image"]?.stringValue?.hasPrefix("data:image/png;base64,") == true)
        #expect((analysis["original_classifier"]?.arrayValue?.count ?? 0) == 5)
        let first = Int(concepts[0]["index"]?.intValue ?? 0)
        let same = try #require(post(port, "/api/regenerate", #"{"image": 0, "multipliers": {}}"#).json)
        #expect(same["image"] == analysis["reconstruction"]?["image"], "no change: the reconstruction")
        let moved = try #require(post(port, "/api/regenerate", #"{"image": 0, "multipliers": {"\#(first)": 4}}"#).json)
        #expect(moved["image"] != same["image"] && moved["explainer"] != same["explainer"], "x4 on the top concept changes the image and the prediction")
        let absolute = post(port, "/api/regenerate", #"{"image": 0, "values": {"\#(first)": 0}}"#)
        let zero = post(port, "/api/regenerate", #"{"image": 0, "multipliers": {"\#(first)": 0}}"#)
        #expect(absolute.status == 200 && absolute.json?["image"] == zero.json?["image"], "value 0 and multiplier 0 both switch the concept off")
        for body in [#"{"image": 0, "concept": null}"#, #"{"image": 0, "concept": \#(first)}"#, #"{"image": 0, "concept": \#(first), "kind": "phi"}"#] {
            let r = post(port, "/api/heatmap", body)
            #expect(r.status == 200 && r.json?["overlay"]?.stringValue?.hasPrefix("data:image/png") == true && (r.json?["values"]?.arrayValue?.count ?? 0) > 0,
                    "\(body): \(r.status) \(r.text.prefix(200))")
        }

        // Malformed and out-of-range requests: JSON errors with a status, never a crash.
        let bad: [(String, String, Int, String)] = [
            ("/api/predict", #"{"image": 100000}"#, 404, "does not exist"),
            ("/api/predict", #"{"image": -1}"#, 404, "does not exist"),
            ("/api/predict", #"{"image": 1.5}"#, 400, "integer"),
            ("/api/predict", #"{"image": 0, "upload": "u1"}"#, 400, "exactly one"),
            ("/api/predict", #"{}"#, 400, "exactly one"),
            ("/api/predict", #"[0]"#, 400, "JSON object"),
            ("/api/predict", #"{"image": "#, 400, "not valid JSON"),
            ("/api/predict", "", 400, "JSON body"),
            ("/api/predict", #"{"upload": "u999"}"#, 404, "unknown"),
            ("/api/regenerate", #"{"image": 0, "multipliers": {"\#(Self.concepts)": 1}}"#, 400, "concept \(Self.concepts) does not exist"),
            ("/api/regenerate", #"{"image": 0, "multipliers": {"-1": 1}}"#, 400, "does not exist"),
            ("/api/regenerate", #"{"image": 0, "multipliers": {"0": 4.5}}"#, 400, "0...4"),
            ("/api/regenerate", #"{"image": 0, "multipliers": {"0": -1}}"#, 400, "0...4"),
            ("/api/regenerate", #"{"image": 0, "multipliers": {"0": 1e39}}"#, 400, "0...4"),
            ("/api/regenerate", #"{"image": 0, "multipliers": {"0": "2"}}"#, 400, "number"),
            ("/api/regenerate", #"{"image": 0, "multipliers": {"x": 2}}"#, 400, "not a concept index"),
            ("/api/regenerate", #"{"image": 0, "multipliers": [2]}"#, 400, "object"),
            ("/api/regenerate", #"{"image": 0, "multipliers": {"0": 1}, "values": {"0": 1}}"#, 400, "both"),
            ("/api/regenerate", #"{"image": 0, "values": {"0": -3}}"#, 400, "0...1000"),
            ("/api/heatmap", #"{"image": 0, "concept": \#(Self.concepts)}"#, 400, "does not exist"),
            ("/api/heatmap", #"{"image": 0, "kind": "phi"}"#, 400, "Grad-CAM"),
            ("/api/heatmap", #"{"image": 0, "kind": "x"}"#, 400, "kind"),
            ("/api/predict", String(repeating: "[", count: 100) + String(repeating: "]", count: 100), 400, "JSON"),
        ]
        for (path, body, status, phrase) in bad {
            let r = post(port, path, body)
            #expect(r.status == status && (r.json?["error"]?.stringValue ?? "").contains(phrase), "\(path) \(body.prefix(60)): \(r.status) \(r.text)")
        }
        let huge = post(port, "/api/predict", #"{"image": 0, "pad": ""# + String(repeating: "x", count: 70_000) + #""}"#)
        #expect(huge.status == 413, "\(huge.status) \(huge.text.prefix(200))")

        // Uploads: a PNG (one of the test images) and a JPEG are decoded; junk, truncation and emptiness are refused.
        let upload = http(port, "POST", "/api/upload", body: thumbnail.body, contentType: "image/png")
        let id = try #require(upload.json?["upload"]?.stringValue, "\(upload.text)")
        let fromUpload = try #require(post(port, "/api/predict", #"{"upload": "\#(id)"}"#).json)
        #expect(fromUpload["reconstruction"]?["image"] == analysis["reconstruction"]?["image"], "the uploaded copy of test image 0 is analysed alike")
        #expect(post(port, "/api/regenerate", #"{"upload": "\#(id)", "multipliers": {"\#(first)": 2}}"#).status == 200)
        let junk = http(port, "POST", "/api/upload", body: Array("not an image at all".utf8), contentType: "image/png")
        #expect(junk.status == 415 && junk.json?["error"] != nil, "\(junk.text)")
        let truncated = http(port, "POST", "/api/upload", body: Array(thumbnail.body.prefix(thumbnail.body.count / 2)), contentType: "image/png")
        #expect(truncated.status == 400 && (truncated.json?["error"]?.stringValue ?? "").contains("cannot decode"), "\(truncated.text)")
        #expect(http(port, "POST", "/api/upload", body: [], contentType: "image/png").status == 400)
        let tooBig = http(port, "POST", "/api/upload", body: [UInt8](repeating: 0x89, count: 9 << 20), contentType: "image/png")
        // 413 as soon as the length is seen; the server then stops reading, so the client may see the reset first.
        #expect(tooBig.status == 413 || (tooBig.status == -2 && tooBig.body.isEmpty), "\(tooBig.status) \(tooBig.text.prefix(200))")
        #expect(http(port, "GET", "/api/info").status == 200, "the server still answers")
    }

    @Test func concurrentRequestsAndDisconnectingClients() throws {
        let server = try start()
        defer { _ = server.stop() }
        let port = server.port
        // Clients that give up: connect and close, half a request line, a body shorter than its length.
        for partial in ["", "GET /api/in", "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"image\": 0"] {
            if let fd = connectLoopback(port) {
                if !partial.isEmpty { sendAll(fd, Array(partial.utf8)) }
                usleep(50_000)
                close(fd)
            }
        }
        // Garbage that is not HTTP.
        if let fd = connectLoopback(port) {
            sendAll(fd, [UInt8](repeating: 0, count: 512) + Array("\r\n\r\n".utf8))
            usleep(100_000)
            close(fd)
        }
        // Eight clients at once, each with its own multipliers; every answer must match the same request made alone.
        let replies = LockedList()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let r = post(port, "/api/regenerate", #"{"image": \#(i % 3), "multipliers": {"0": \#(Double(i) / 2)}}"#)
            replies.append(i, r)
        }
        let all = replies.sorted()
        #expect(all.count == 8 && all.allSatisfy { $0.1.status == 200 }, "\(all.map { "\($0.0): \($0.1.status) \($0.1.text.prefix(100))" })")
        for (i, r) in all where i < 3 {
            let alone = post(port, "/api/regenerate", #"{"image": \#(i % 3), "multipliers": {"0": \#(Double(i) / 2)}}"#)
            #expect(alone.json?["image"] == r.json?["image"] && alone.json?["explainer"] == r.json?["explainer"])
        }
        #expect(http(port, "GET", "/api/info").status == 200, "the server survives every client above")
        #expect(server.stop() == 0, "SIGTERM stops the server cleanly: \(server.output)")
        #expect(server.output.contains("explore: stopped"))
    }

    @Test func listensOnLoopbackOnly() throws {
        let server = try start()
        defer { _ = server.stop() }
        let listening = runShell("ss -ltn 2>/dev/null || netstat -ltn 2>/dev/null")
        let lines = listening.output.split(separator: "\n").filter { $0.contains(":\(server.port) ") }
        if lines.isEmpty {
            Issue.record("neither ss nor netstat listed port \(server.port): \(listening.output)")
        }
        for line in lines { #expect(line.contains("127.0.0.1:\(server.port)"), "listens beyond loopback: \(line)") }
        // Another address of this host, if it has one, is refused.
        let other = runShell("hostname -I 2>/dev/null").output.split(separator: " ").map(String.init).first { $0.contains(".") && !$0.hasPrefix("127.") }
        if let other { #expect(connectLoopback(server.port, address: other.trimmingCharacters(in: .whitespacesAndNewlines)) == nil, "reachable on \(other)") }
        // Bad invocations: clear messages, non-zero exits.
        var r = runShell(".build/release/viscoin explore --viscoin \(Self.viscoin) --data \(Self.data) --port 70000")
        #expect(r.status != 0 && r.output.contains("--port"), "\(r.output)")
        r = runShell(".build/release/viscoin explore --viscoin /nonexistent/v.safetensors --data \(Self.data) --port 0")
        #expect(r.status != 0 && r.output.contains("/nonexistent/v.safetensors"), "\(r.output)")
        r = runShell(".build/release/viscoin explore --viscoin \(Self.viscoin) --data \(Self.data) --port \(server.port)", timeout: 120)
        #expect(r.status != 0 && r.output.contains("cannot serve"), "a port in use: \(r.output)")
    }

    @Test func browserMovesASliderAndThePredictionFollows() throws {
        let server = try start()
        defer { _ = server.stop() }
        let browser = ["chromium", "chromium-browser", "google-chrome"].first { runShell("command -v \($0)").status == 0 }
        guard let browser else {
            // .ci/run installs Debian's chromium; elsewhere the test says what is missing.
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("chromium is not installed (.ci/run installs it)") }
            else { print("ExplorerTests: skipping the browser test: no chromium (apt-get install chromium)") }
            return
        }
        let flags = "--headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=60000 --user-data-dir=/tmp/viscoin-it-chromium-\(server.port)"
        let url = "http://127.0.0.1:\(server.port)/?selftest=1"
        let dom = runShell("\(browser) \(flags) --dump-dom '\(url)' 2>/dev/null", timeout: 180)
        let verdict = dom.output.range(of: "<pre id=\"selftest\">").map { String(dom.output[$0.upperBound...].prefix { $0 != "<" }) } ?? ""
        #expect(verdict.hasPrefix("SELFTEST PASS"), "the page test: \(verdict.isEmpty ? String(dom.output.suffix(2000)) : verdict)")
        #expect(verdict.contains("image_changed=true") && verdict.contains("prediction_changed=true") && verdict.contains("heatmap=true"))
        let artifacts = "\(repositoryRoot)/.build/test-artifacts"
        try? Files.createDirectory(artifacts)
        let shot = runShell("\(browser) \(flags) --window-size=1300,1100 --screenshot=\(artifacts)/explorer.png '\(url)' 2>&1", timeout: 180)
        let size = (try? FileManager.default.attributesOfItem(atPath: "\(artifacts)/explorer.png")[.size] as? Int) ?? 0
        #expect(shot.status == 0 && size > 20_000, "screenshot: \(size) bytes, \(shot.output.suffix(500))")
    }

    @Test func heatmapsCommandWritesOverlaysAndMaps() throws {
        try requireReleaseBinary()
        try #require(Self.run.status == 0, "the VisCoIN run failed: \(Self.run.output)")
        let out = "\(VisCoINJobTests.dir)/heatmaps"
        var r = runShell(".build/release/viscoin heatmaps --viscoin \(Self.viscoin) --data \(Self.data) --images 0,2 --top-k 3 --outdir \(out)", timeout: 300)
        #expect(r.status == 0 && r.output.contains("Grad-CAM at hidden state 2 (4x4)"), "\(r.output)")
        #expect(Files.exists("\(out)/heatmaps-0.png") && Files.exists("\(out)/heatmaps-2.png"))
        let json = try JSONValue.parse(try Files.readText("\(out)/heatmaps.json"))
        let first = json["images"]?.arrayValue?.first
        #expect(first?["concepts"]?.arrayValue?.count == 3 && first?["maps"]?["concept_maps"]?.arrayValue?.count == 3)
        #expect(first?["maps"]?["class_map"]?["values"]?.arrayValue?.count == 16)
        r = runShell(".build/release/viscoin heatmaps --viscoin \(Self.viscoin) --data \(Self.data) --images 0,100000 --outdir \(out)2")
        #expect(r.status != 0 && r.output.contains("does not exist"), "\(r.output)")
        r = runShell(".build/release/viscoin heatmaps --viscoin \(Self.viscoin) --data \(Self.data) --layer 9 --outdir \(out)3")
        #expect(r.status != 0 && r.output.contains("--layer"), "\(r.output)")
    }
}

/// Replies collected from several threads.
final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(Int, HTTPReply)] = []
    func append(_ i: Int, _ r: HTTPReply) { lock.lock(); items.append((i, r)); lock.unlock() }
    func sorted() -> [(Int, HTTPReply)] { lock.lock(); defer { lock.unlock() }; return items.sorted { $0.0 < $1.0 } }
}
