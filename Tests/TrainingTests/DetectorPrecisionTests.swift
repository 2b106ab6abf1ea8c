// FID's feature detectors are measuring instruments: under `--precision bf16` the models being
// trained or evaluated compute with bf16 products, but a detector's features stay the float32
// ones, bit for bit, so FID figures of bf16 and float32 runs are comparable.
import Evaluation
import LinearAlgebra
import Models
import TensorCore
import Testing

@Suite struct DetectorPrecisionTests {
    @Test func classifierDetectorComputesInFloat32UnderBF16() {
        let model = Classifier(config: .named("tiny")!, classes: 3, generator: RandomGenerator(seed: 2))
        let detector = ClassifierDetector(model: model, source: "tiny.safetensors")
        let images = RandomGenerator(seed: 3).uniform([2, 3, 32, 32], low: 0, high: 255)
        let float32 = BLAS.$precisionOverride.withValue(.float32) { detector.features(images).toArray() }
        let underBF16 = BLAS.$precisionOverride.withValue(.bf16) { detector.features(images).toArray() }
        #expect(float32 == underBF16, "the detector followed --precision bf16")
        // The same network outside the detector does compute in bf16 there.
        let input = imagenetNormalized(images / 127.5 - 1)
        let direct = BLAS.$precisionOverride.withValue(.bf16) { noGrad { model.logitsAndPooled(input).pooled.toArray() } }
        let direct32 = BLAS.$precisionOverride.withValue(.float32) { noGrad { model.logitsAndPooled(input).pooled.toArray() } }
        #expect(direct != direct32, "bf16 gave the float32 features: the override had no effect")
    }
}
