// Feature spaces for FID: the Inception-v3 detector (converted weights; stylegan2-ada's NVIDIA
// preprocessing or pytorch-fid's), or a trained classifier f whose pooled features give a
// domain FID on data without an ImageNet network (the demo, histology). Every figure says
// which detector it came from (`label`). A detector is a measuring instrument: it computes in
// float32 whatever `--precision` the models under test use, so figures stay comparable.
import Common
import Datasets
import LinearAlgebra
import Models
import TensorCore

public struct DetectorError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Maps images [N, 3, H, W] with values in [0, 255] to features [N, dimension].
public protocol FeatureDetector: AnyObject {
    var dimension: Int { get }
    /// How logs and reports name the figures computed with it ("Inception (nvidia)", "classifier f.safetensors").
    var label: String { get }
    func features(_ images: Tensor) -> Tensor
}

/// Inception-v3 pool features (2048).
public final class InceptionDetector: FeatureDetector {
    public enum Preprocessing: String, ConfigurationChoice {
        /// stylegan2-ada's: [0, 255] input, resize by grid_sample, (x - 128) / 128.
        case nvidia
        /// pytorch-fid's: x / 255, bilinear resize, 2x - 1.
        case pytorchFID = "pytorch-fid"
    }
    public let model: InceptionV3
    public let preprocessing: Preprocessing
    public let dimension = 2048
    public let label: String

    public init(model: InceptionV3, preprocessing: Preprocessing = .nvidia, source: String) {
        self.model = model
        self.preprocessing = preprocessing
        model.eval()
        label = "Inception-v3 (\(preprocessing.rawValue)) \(Files.lastComponent(of: source))"
    }

    public func features(_ images: Tensor) -> Tensor {
        BLAS.$precisionOverride.withValue(.float32) {
            noGrad { preprocessing == .nvidia ? model.features(images) : model.pytorchFIDFeatures(images / 255) }
        }
    }
}

/// The pooled features of a trained classifier (its ImageNet-normalised input, as in training).
public final class ClassifierDetector: FeatureDetector {
    public let model: Classifier
    public let dimension: Int
    public let label: String

    public init(model: Classifier, source: String) {
        self.model = model
        model.eval()
        dimension = model.linear.weight.shape[1]
        label = "classifier \(Files.lastComponent(of: source)) (domain FID)"
    }

    public func features(_ images: Tensor) -> Tensor {
        BLAS.$precisionOverride.withValue(.float32) {
            noGrad { model.logitsAndPooled(imagenetNormalized(images / 127.5 - 1)).pooled.flattened(from: 1) }
        }
    }
}

public enum FeatureDetectors {
    /// `FILE` (a converted Inception weight file) or `classifier:FILE` (a classifier weight file).
    public static func load(_ spec: String, preprocessing: InceptionDetector.Preprocessing = .nvidia) throws -> FeatureDetector {
        if spec.hasPrefix("classifier:") {
            let path = String(spec.dropFirst("classifier:".count))
            let (module, _) = try ModelFile.load(path, expecting: .classifier)
            return ClassifierDetector(model: module as! Classifier, source: path)
        }
        let (module, _) = try ModelFile.load(spec, expecting: .inception)
        return InceptionDetector(model: module as! InceptionV3, preprocessing: preprocessing, source: spec)
    }
}
