// Reports golden-comparison failures (nil entries are passes) as test issues.
import Testing

func record(_ failures: [String?], sourceLocation: SourceLocation = #_sourceLocation) {
    for f in failures.compactMap({ $0 }) { Issue.record("\(f)", sourceLocation: sourceLocation) }
}
