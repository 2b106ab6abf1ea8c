// The concept explorer's HTTP server (Hummingbird): the page at `/` and a JSON API under
// `/api` (README "Concept explorer"). Requests are validated (body sizes, JSON shape, ranges,
// concept indices) and every API error is JSON `{"error": ...}` with a status code. The models
// run on one serial queue, so concurrent requests wait their turn instead of racing; the page
// and thumbnails are served meanwhile. Listens on 127.0.0.1 unless told otherwise.
import Common
import Dispatch
import Evaluation
import Hummingbird
import Logging

public struct ExplorerServerOptions: Sendable {
    public var host = "127.0.0.1"
    /// 0: any free port (the one chosen is passed to `onRunning`).
    public var port = 8765
    public var maxUploadBytes = 8 << 20
    public var maxJSONBytes = 64 << 10
    public init() {}
}

/// Runs blocking model work on one serial queue from async handlers.
final class ComputeQueue: Sendable {
    private let queue = DispatchQueue(label: "viscoin.explore.compute")
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}

public enum ExplorerServer {
    /// Serves until SIGINT/SIGTERM. `onRunning(port)` is called once the socket listens.
    public static func run(_ model: ExplorerModel, options: ExplorerServerOptions, onRunning: @escaping @Sendable (Int) -> Void) async throws {
        let router = makeRouter(model, options: options)
        var logger = Logger(label: "viscoin.explore")
        logger.logLevel = .warning
        let app = Application(router: router, configuration: .init(address: .hostname(options.host, port: options.port), serverName: "viscoin-explore"),
                              onServerRunning: { channel in onRunning(channel.localAddress?.port ?? options.port) }, logger: logger)
        try await app.runService()
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: value.serialized() + "\n")))
    }

    static func failure(_ status: Int, _ message: String) -> Response {
        json(["error": .string(message), "status": JSONValue(status)], status: HTTPResponse.Status(code: status))
    }

    /// Runs `body`, turning explorer errors and every other failure into JSON errors.
    static func guarded(_ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch let e as ExplorerError { return failure(e.status, e.message) } catch let e as JSONError {
            return failure(400, "the request body is not valid JSON: \(e)")
        } catch {
            return failure(500, "internal error: \(error)")
        }
    }

    /// Reads at most `limit` bytes of the body (413 beyond).
    static func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw ExplorerError(413, "the request body has \(length) bytes; at most \(limit) are accepted")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch {
            throw ExplorerError(413, "the request body is larger than \(limit) bytes")
        }
    }

    static func jsonBody(_ request: Request, limit: Int) async throws -> JSONValue {
        let bytes = try await body(request, limit: limit)
        guard !bytes.isEmpty else { throw ExplorerError(400, "the request needs a JSON body") }
        let value = try JSONValue.parse(bytes, maxDepth: 8)
        guard value.objectValue != nil else { throw ExplorerError(400, "the request body must be a JSON object") }
        return value
    }

    static func source(_ body: JSONValue) throws -> ExplorerSource {
        switch (body["image"], body["upload"]) {
        case (.some(let image), nil):
            guard let p = image.intValue, let position = Int(exactly: p) else { throw ExplorerError(400, "\"image\" must be an integer test position") }
            return .test(position)
        case (nil, .some(let upload)):
            guard let id = upload.stringValue, !id.isEmpty, id.count <= 32 else { throw ExplorerError(400, "\"upload\" must be an upload id") }
            return .upload(id)
        default: throw ExplorerError(400, "give exactly one of \"image\" (a test position) or \"upload\" (an upload id)")
        }
    }

    /// {"3": 2.0, ...} -> [3: 2.0].
    static func conceptFloats(_ value: JSONValue?, name: String) throws -> [Int: Float] {
        guard let value else { return [:] }
        guard let object = value.objectValue else { throw ExplorerError(400, "\"\(name)\" must be an object of concept index -> number") }
        guard object.count <= 4096 else { throw ExplorerError(400, "\"\(name)\" has too many entries") }
        var out: [Int: Float] = [:]
        for (key, v) in object {
            guard let j = Int(key) else { throw ExplorerError(400, "\"\(name)\": \"\(key)\" is not a concept index") }
            guard let number = v.doubleValue else { throw ExplorerError(400, "\"\(name)\"[\(key)] must be a number") }
            out[j] = Float(number)
        }
        return out
    }

    static func dataURL(_ png: [UInt8]) -> JSONValue { .string("data:image/png;base64," + Base64.encode(png)) }

    static func classes(_ list: [RankedClass]) -> JSONValue {
        .array(list.map { ["index": JSONValue($0.index), "name": .string($0.name), "probability": JSONValue(Double($0.probability))] })
    }

    static func prediction(_ p: ExplorerPrediction) -> [(String, JSONValue)] {
        [("image", dataURL(p.imagePNG)), ("classifier", classes(p.classifier)), ("explainer", classes(p.explainer))]
    }

    static func milliseconds(since start: Double) -> JSONValue { JSONValue((Console.now() - start) * 1000) }

    static func makeRouter(_ model: ExplorerModel, options: ExplorerServerOptions) -> Router<BasicRequestContext> {
        let router = Router()
        let compute = ComputeQueue()
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8",
                                            .contentSecurityPolicy: "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"],
                     body: .init(byteBuffer: ByteBuffer(string: ExplorerPage.html)))
        }
        router.get("/api/info") { _, _ in
            json(["classes": .array(model.classNames.map { .string($0) }), "concepts": JSONValue(model.concepts),
                  "resolution": JSONValue(model.resolution), "test_images": JSONValue(model.testItems.count),
                  "listed_concepts": JSONValue(model.listedConcepts), "max_upload_bytes": JSONValue(options.maxUploadBytes),
                  "multiplier_range": [0, 4]])
        }
        router.get("/api/images") { request, _ in
            await guarded {
                let q = request.uri.queryParameters
                func integer(_ name: String, _ fallback: Int?) throws -> Int? {
                    guard let text = q.get(name) else { return fallback }
                    guard let value = Int(text) else { throw ExplorerError(400, "query parameter \(name)=\(text) is not an integer") }
                    return value
                }
                let (total, positions) = try model.list(classIndex: try integer("class", nil), offset: try integer("offset", 0)!, limit: try integer("limit", 60)!)
                return json(["total": JSONValue(total), "images": .array(positions.map { p in
                    ["position": JSONValue(p), "label": model.label(ofPosition: p).map { JSONValue($0) } ?? .null]
                })])
            }
        }
        router.get("/api/image/:position") { _, context in
            await guarded {
                guard let text = context.parameters.get("position"), let position = Int(text) else {
                    throw ExplorerError(400, "the image position must be an integer")
                }
                let png = try await compute.run { try model.thumbnailPNG(position) }
                return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "max-age=3600"],
                                body: .init(byteBuffer: ByteBuffer(bytes: png)))
            }
        }
        router.post("/api/upload") { request, _ in
            await guarded {
                let bytes = try await body(request, limit: options.maxUploadBytes)
                guard !bytes.isEmpty else { throw ExplorerError(400, "the upload is empty: send the PNG or JPEG file as the request body") }
                let id = try await compute.run { try model.upload(bytes) }
                return json(["upload": .string(id)])
            }
        }
        router.post("/api/predict") { request, _ in
            await guarded {
                let source = try source(try await jsonBody(request, limit: options.maxJSONBytes))
                let start = Console.now()
                let a = try await compute.run { try model.analyse(source) }
                var out: [(String, JSONValue)] = [("original", dataURL(a.originalPNG)), ("label", a.label.map { JSONValue($0) } ?? .null),
                                                  ("predicted_class", JSONValue(a.predictedClass)),
                                                  ("original_classifier", classes(a.original.classifier)), ("original_explainer", classes(a.original.explainer))]
                out.append(("reconstruction", .object(prediction(a.reconstruction))))
                out.append(("concepts", .array(a.concepts.map { c in
                    ["index": JSONValue(c.index), "intensity": JSONValue(Double(c.intensity)), "activation": JSONValue(Double(c.activation)),
                     "top_images": JSONValue(c.topImages)]
                })))
                out.append(("latency_ms", milliseconds(since: start)))
                return json(.object(out))
            }
        }
        router.post("/api/regenerate") { request, _ in
            await guarded {
                let body = try await jsonBody(request, limit: options.maxJSONBytes)
                let source = try source(body)
                let multipliers = try conceptFloats(body["multipliers"], name: "multipliers"), values = try conceptFloats(body["values"], name: "values")
                let start = Console.now()
                let p = try await compute.run { try model.regenerate(source, multipliers: multipliers, values: values) }
                return json(.object(prediction(p) + [("latency_ms", milliseconds(since: start))]))
            }
        }
        router.post("/api/heatmap") { request, _ in
            await guarded {
                let body = try await jsonBody(request, limit: options.maxJSONBytes)
                let source = try source(body)
                var concept: Int? = nil
                if let c = body["concept"], c != .null {
                    guard let v = c.intValue, let j = Int(exactly: v) else { throw ExplorerError(400, "\"concept\" must be a concept index or null") }
                    concept = j
                }
                let kindText = body["kind"]?.stringValue ?? HeatmapKind.gradcam.rawValue
                guard let kind = HeatmapKind(rawValue: kindText) else {
                    throw ExplorerError(400, "\"kind\" must be one of \(HeatmapKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let start = Console.now(), target = concept
                let (png, map) = try await compute.run { try model.heatmap(source, concept: target, kind: kind) }
                return json(["overlay": dataURL(png), "target": .string(map.target), "index": JSONValue(map.index), "kind": .string(map.kind.rawValue),
                             "height": JSONValue(map.height), "width": JSONValue(map.width), "peak": JSONValue(Double(map.peak)),
                             "values": .array(map.values.map { JSONValue(Double($0)) }), "latency_ms": milliseconds(since: start)])
            }
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
            router.on("/api/**", method: method) { request, _ in failure(404, "no such API endpoint: \(request.method) \(request.uri.path)") }
        }
        return router
    }
}
