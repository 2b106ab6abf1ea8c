// Codable over the project's strict JSON value: `JSONValueEncoder` turns any Encodable into a
// `JSONValue` (object keys in declaration order, Swift's camelCase names written as snake_case,
// nil optionals written as null rather than left out), `JSONValueDecoder` reads it back with
// errors that name the field. Typed configurations and trainer states use it for config.json,
// checkpoint manifests and `--dry-run`; untrusted text is still parsed by `JSONValue.parse`.
//
// The per-type methods below exist because the Codable container protocols require one
// overload per primitive type; each forwards to one generic implementation.

/// Swift property name -> JSON key: `batchSize` -> `batch_size`, `r1Gamma` -> `r1_gamma`.
public func snakeCase(_ name: String) -> String {
    var out = ""
    for ch in name {
        if ch.isUppercase {
            if !out.isEmpty { out.append("_") }
            out += ch.lowercased()
        } else {
            out.append(ch)
        }
    }
    return out
}

public struct JSONCodingError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { path.isEmpty ? reason : "field '\(path)': \(reason)" }
}

/// `a.b[2].c` for a coding path (keys in their JSON spelling).
func describePath(_ path: [CodingKey]) -> String {
    var out = ""
    for key in path {
        if let i = key.intValue, key is IndexKey { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + snakeCase(key.stringValue) }
    }
    return out
}

struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

// MARK: Encoding

public struct JSONValueEncoder {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = Slot()
        try root.store(value, codingPath: [])
        return root.resolved()
    }
}

/// A node of the value being built; containers write into their parent's slots.
final class Slot {
    var value: JSONValue = .null
    var members: [(String, Slot)]? = nil
    var items: [Slot]? = nil

    func resolved() -> JSONValue {
        if let members { return .object(members.map { ($0.0, $0.1.resolved()) }) }
        if let items { return .array(items.map { $0.resolved() }) }
        return value
    }

    func member(_ name: String) -> Slot {
        if members == nil { members = [] }
        if let existing = members!.first(where: { $0.0 == name }) { return existing.1 }
        let s = Slot()
        members!.append((name, s))
        return s
    }

    func appendItem() -> Slot {
        if items == nil { items = [] }
        let s = Slot()
        items!.append(s)
        return s
    }

    /// Primitives directly, everything else through its own `encode(to:)`.
    func store<T: Encodable>(_ v: T, codingPath: [CodingKey]) throws {
        switch v {
        case let x as JSONValue: value = x
        case let x as Bool: value = .bool(x)
        case let x as String: value = .string(x)
        case let x as Int: value = .int(Int64(x))
        case let x as Int8: value = .int(Int64(x))
        case let x as Int16: value = .int(Int64(x))
        case let x as Int32: value = .int(Int64(x))
        case let x as Int64: value = .int(x)
        case let x as UInt: value = x <= UInt(Int64.max) ? .int(Int64(x)) : .string(String(x))
        case let x as UInt8: value = .int(Int64(x))
        case let x as UInt16: value = .int(Int64(x))
        case let x as UInt32: value = .int(Int64(x))
        case let x as UInt64: value = x <= UInt64(Int64.max) ? .int(Int64(x)) : .string(String(x))
        case let x as Double: value = .double(x)
        // The shortest decimal of the Float, not of its widened Double (0.3, not 0.30000001192092896).
        case let x as Float: value = .double(x.isFinite ? Double(String(x))! : Double(x))
        default: try v.encode(to: SlotEncoder(slot: self, codingPath: codingPath))
        }
    }
}

struct SlotEncoder: Encoder {
    let slot: Slot
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if slot.members == nil { slot.members = [] }
        return KeyedEncodingContainer(KeyedSlotEncoder<Key>(slot: slot, codingPath: codingPath))
    }
    func unkeyedContainer() -> UnkeyedEncodingContainer {
        if slot.items == nil { slot.items = [] }
        return UnkeyedSlotEncoder(slot: slot, codingPath: codingPath)
    }
    func singleValueContainer() -> SingleValueEncodingContainer { SingleSlotEncoder(slot: slot, codingPath: codingPath) }
}

struct KeyedSlotEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let slot: Slot
    let codingPath: [CodingKey]

    private func put<T: Encodable>(_ value: T, _ key: Key) throws {
        try slot.member(snakeCase(key.stringValue)).store(value, codingPath: codingPath + [key])
    }
    private func putOptional<T: Encodable>(_ value: T?, _ key: Key) throws {
        if let value { try put(value, key) } else { slot.member(snakeCase(key.stringValue)).value = .null }
    }

    mutating func encodeNil(forKey key: Key) throws { slot.member(snakeCase(key.stringValue)).value = .null }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try putOptional(value, key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try putOptional(value, key) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        SlotEncoder(slot: slot.member(snakeCase(key.stringValue)), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        SlotEncoder(slot: slot.member(snakeCase(key.stringValue)), codingPath: codingPath + [key]).unkeyedContainer()
    }
    mutating func superEncoder() -> Encoder { SlotEncoder(slot: slot, codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> Encoder { SlotEncoder(slot: slot.member(snakeCase(key.stringValue)), codingPath: codingPath + [key]) }
}

struct UnkeyedSlotEncoder: UnkeyedEncodingContainer {
    let slot: Slot
    let codingPath: [CodingKey]
    var count: Int { slot.items?.count ?? 0 }

    private func put<T: Encodable>(_ value: T) throws {
        let path = codingPath + [IndexKey(count)]
        try slot.appendItem().store(value, codingPath: path)
    }

    mutating func encodeNil() throws { slot.appendItem().value = .null }
    mutating func encode<T: Encodable>(_ value: T) throws { try put(value) }
    mutating func encode(_ value: Bool) throws { try put(value) }
    mutating func encode(_ value: String) throws { try put(value) }
    mutating func encode(_ value: Double) throws { try put(value) }
    mutating func encode(_ value: Float) throws { try put(value) }
    mutating func encode(_ value: Int) throws { try put(value) }
    mutating func encode(_ value: Int8) throws { try put(value) }
    mutating func encode(_ value: Int16) throws { try put(value) }
    mutating func encode(_ value: Int32) throws { try put(value) }
    mutating func encode(_ value: Int64) throws { try put(value) }
    mutating func encode(_ value: UInt) throws { try put(value) }
    mutating func encode(_ value: UInt8) throws { try put(value) }
    mutating func encode(_ value: UInt16) throws { try put(value) }
    mutating func encode(_ value: UInt32) throws { try put(value) }
    mutating func encode(_ value: UInt64) throws { try put(value) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        SlotEncoder(slot: slot.appendItem(), codingPath: codingPath).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        SlotEncoder(slot: slot.appendItem(), codingPath: codingPath).unkeyedContainer()
    }
    mutating func superEncoder() -> Encoder { SlotEncoder(slot: slot.appendItem(), codingPath: codingPath) }
}

struct SingleSlotEncoder: SingleValueEncodingContainer {
    let slot: Slot
    let codingPath: [CodingKey]
    private func put<T: Encodable>(_ value: T) throws { try slot.store(value, codingPath: codingPath) }
    mutating func encodeNil() throws { slot.value = .null }
    mutating func encode<T: Encodable>(_ value: T) throws { try put(value) }
    mutating func encode(_ value: Bool) throws { try put(value) }
    mutating func encode(_ value: String) throws { try put(value) }
    mutating func encode(_ value: Double) throws { try put(value) }
    mutating func encode(_ value: Float) throws { try put(value) }
    mutating func encode(_ value: Int) throws { try put(value) }
    mutating func encode(_ value: Int8) throws { try put(value) }
    mutating func encode(_ value: Int16) throws { try put(value) }
    mutating func encode(_ value: Int32) throws { try put(value) }
    mutating func encode(_ value: Int64) throws { try put(value) }
    mutating func encode(_ value: UInt) throws { try put(value) }
    mutating func encode(_ value: UInt8) throws { try put(value) }
    mutating func encode(_ value: UInt16) throws { try put(value) }
    mutating func encode(_ value: UInt32) throws { try put(value) }
    mutating func encode(_ value: UInt64) throws { try put(value) }
}

// MARK: Decoding

public struct JSONValueDecoder {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try load(type, from: value, codingPath: [])
    }
}

func mismatch(_ path: [CodingKey], _ expected: String, _ found: JSONValue) -> JSONCodingError {
    let shown = found.serialized()
    return JSONCodingError(path: describePath(path), reason: "expected \(expected), found \(shown.count > 60 ? String(shown.prefix(60)) + "..." : shown)")
}

/// Primitives directly, everything else through its own `init(from:)`.
func load<T: Decodable>(_ type: T.Type, from value: JSONValue, codingPath: [CodingKey]) throws -> T {
    func integer<I: FixedWidthInteger>(_: I.Type) throws -> I {
        if let s = value.stringValue, let v = I(s) { return v }  // large unsigned values are written as strings
        guard let v = value.intValue, let exact = I(exactly: v) else { throw mismatch(codingPath, "an integer in range", value) }
        return exact
    }
    func number() throws -> Double {
        guard let d = value.doubleValue else { throw mismatch(codingPath, "a number", value) }
        return d
    }
    switch type {
    case is JSONValue.Type: return value as! T
    case is Bool.Type:
        guard let b = value.boolValue else { throw mismatch(codingPath, "true or false", value) }
        return b as! T
    case is String.Type:
        guard let s = value.stringValue else { throw mismatch(codingPath, "a string", value) }
        return s as! T
    case is Int.Type: return try integer(Int.self) as! T
    case is Int8.Type: return try integer(Int8.self) as! T
    case is Int16.Type: return try integer(Int16.self) as! T
    case is Int32.Type: return try integer(Int32.self) as! T
    case is Int64.Type: return try integer(Int64.self) as! T
    case is UInt.Type: return try integer(UInt.self) as! T
    case is UInt8.Type: return try integer(UInt8.self) as! T
    case is UInt16.Type: return try integer(UInt16.self) as! T
    case is UInt32.Type: return try integer(UInt32.self) as! T
    case is UInt64.Type: return try integer(UInt64.self) as! T
    case is Double.Type: return try number() as! T
    case is Float.Type: return Float(try number()) as! T
    default: return try T(from: ValueDecoder(value: value, codingPath: codingPath))
    }
}

struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let members = value.objectValue else { throw mismatch(codingPath, "an object", value) }
        return KeyedDecodingContainer(KeyedValueDecoder<Key>(members: members, codingPath: codingPath))
    }
    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard let items = value.arrayValue else { throw mismatch(codingPath, "an array", value) }
        return UnkeyedValueDecoder(items: items, codingPath: codingPath)
    }
    func singleValueContainer() throws -> SingleValueDecodingContainer { SingleValueDecoder(value: value, codingPath: codingPath) }
}

struct KeyedValueDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [(String, JSONValue)]
    let codingPath: [CodingKey]

    var allKeys: [Key] { members.compactMap { m in Key(stringValue: m.0) } }
    private func lookup(_ key: Key) -> JSONValue? {
        let name = snakeCase(key.stringValue)
        return members.first(where: { $0.0 == name })?.1
    }
    private func get<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        guard let v = lookup(key) else { throw JSONCodingError(path: describePath(codingPath + [key]), reason: "missing") }
        return try load(type, from: v, codingPath: codingPath + [key])
    }
    private func getOptional<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard let v = lookup(key), v != .null else { return nil }
        return try load(type, from: v, codingPath: codingPath + [key])
    }

    func contains(_ key: Key) -> Bool { lookup(key) != nil }
    func decodeNil(forKey key: Key) throws -> Bool { (lookup(key) ?? .null) == .null }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try get(type, key) }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try getOptional(type, key) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try get(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try get(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try get(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try get(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try get(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try get(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try get(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try get(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try get(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try get(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try get(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try get(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try get(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try get(type, key) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: try get(JSONValue.self, key), codingPath: codingPath + [key]).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try ValueDecoder(value: try get(JSONValue.self, key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    func superDecoder() throws -> Decoder { ValueDecoder(value: .object(members), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> Decoder { ValueDecoder(value: lookup(key) ?? .null, codingPath: codingPath + [key]) }
}

struct UnkeyedValueDecoder: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let codingPath: [CodingKey]
    var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> (JSONValue, [CodingKey]) {
        guard !isAtEnd else { throw JSONCodingError(path: describePath(codingPath), reason: "array has too few elements") }
        defer { currentIndex += 1 }
        return (items[currentIndex], codingPath + [IndexKey(currentIndex)])
    }
    private mutating func get<T: Decodable>(_ type: T.Type) throws -> T {
        let (v, path) = try next()
        return try load(type, from: v, codingPath: path)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try get(type) }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try get(type) }
    mutating func decode(_ type: String.Type) throws -> String { try get(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try get(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try get(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try get(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try get(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try get(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try get(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try get(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try get(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try get(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try get(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try get(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try get(type) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (v, path) = try next()
        return try ValueDecoder(value: v, codingPath: path).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let (v, path) = try next()
        return try ValueDecoder(value: v, codingPath: path).unkeyedContainer()
    }
    mutating func superDecoder() throws -> Decoder {
        let (v, path) = try next()
        return ValueDecoder(value: v, codingPath: path)
    }
}

struct SingleValueDecoder: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [CodingKey]
    private func get<T: Decodable>(_ type: T.Type) throws -> T { try load(type, from: value, codingPath: codingPath) }
    func decodeNil() -> Bool { value == .null }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try get(type) }
    func decode(_ type: Bool.Type) throws -> Bool { try get(type) }
    func decode(_ type: String.Type) throws -> String { try get(type) }
    func decode(_ type: Double.Type) throws -> Double { try get(type) }
    func decode(_ type: Float.Type) throws -> Float { try get(type) }
    func decode(_ type: Int.Type) throws -> Int { try get(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try get(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try get(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try get(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try get(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try get(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try get(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try get(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try get(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try get(type) }
}

extension JSONValue: Codable {
    /// Only through this file's coders, which hand JSON values over unchanged.
    public init(from decoder: Decoder) throws {
        guard let d = decoder as? ValueDecoder else { throw JSONCodingError(path: "", reason: "JSONValue decodes only with JSONValueDecoder") }
        self = d.value
    }
    public func encode(to encoder: Encoder) throws {
        guard let e = encoder as? SlotEncoder else { throw JSONCodingError(path: "", reason: "JSONValue encodes only with JSONValueEncoder") }
        e.slot.value = self
    }
}

/// String-valued choices of a configuration (optimizer, schedule, augmentation, ...): decoding
/// an unknown value fails with a message that lists the accepted ones.
public protocol ConfigurationChoice: RawRepresentable, CaseIterable, Codable, Sendable, CustomStringConvertible where RawValue == String {}

extension ConfigurationChoice {
    public var description: String { rawValue }
    public static var choices: String { allCases.map(\.rawValue).joined(separator: ", ") }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: text) else {
            throw JSONCodingError(path: describePath(decoder.codingPath), reason: "'\(text)' is not one of \(Self.choices)")
        }
        self = value
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}
