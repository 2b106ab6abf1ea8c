// Errors of dataset preparation and loading. Every error names the file (or folder) and says
// what is wrong with it.
import Common

public struct DatasetError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}
