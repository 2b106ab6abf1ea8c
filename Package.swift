// swift-tools-version:6.1
// VisCoIN in Swift: a distributed (MPI) CPU trainer for concept-based interpretable image
// classification with a StyleGAN2 generator.
//
// Layers, bottom to top:
//   C system libraries  COpenMPI COpenBLAS COneDNN CZstd CPNG CJPEG CTIFF
//   C shims             CMPIShim (MPI calls Swift cannot import) CImageCodecs (setjmp-safe codecs)
//                       CConvShim (oneDNN direct convolutions behind our NCHW layout)
//                       CBFloat16 (bf16 matrix products for --precision bf16)
//   Swift foundations   Common LinearAlgebra Communication ImageCodecs Zstd SafeTensors
//   Tensor core         TensorCore (tensors, autograd, operators, kernels)
//   Models              NN (modules, layers) Models (ResNet, StyleGAN2, VisCoIN, Inception, LPIPS) FeatureMetrics (FID/KID)
//   Data                Datasets (preparation, prepared format, sharded loader, transforms)
//   Evaluation          Evaluation (generator sampling, feature detectors, FID pipeline)
//   Training            Training (engine, data parallelism, optimizers, checkpoints, reports, trainers)
//   Explorer            Explorer (the concept explorer's page and JSON API, on Hummingbird)
//   CLI                 ViscoinCLI (the `viscoin` executable)
import PackageDescription

let package = Package(
    name: "viscoin",
    products: [
        .executable(name: "viscoin", targets: ["ViscoinCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The concept explorer's HTTP server; default traits off (no swift-configuration).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C system libraries (found with pkg-config; Debian package names in `providers`).
        .systemLibrary(name: "COpenMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "COneDNN", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CTIFF", pkgConfig: "libtiff-4", providers: [.apt(["libtiff-dev"])]),

        // C shims.
        .target(name: "CMPIShim", dependencies: ["COpenMPI"]),
        .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG", "CTIFF"]),
        .target(name: "CConvShim", dependencies: ["COneDNN"]),
        .target(name: "CBFloat16", dependencies: ["COneDNN", "COpenBLAS"]),

        // Swift foundations.
        .target(name: "Common"),
        .target(name: "LinearAlgebra", dependencies: ["COpenBLAS", "COneDNN", "CBFloat16"]),
        .target(name: "Communication", dependencies: ["CMPIShim", "Common"]),
        .target(name: "ImageCodecs", dependencies: ["CImageCodecs", "Common"]),
        .target(name: "Zstd", dependencies: ["CZstd", "Common"]),
        .target(name: "SafeTensors", dependencies: ["Common", "Zstd"]),

        // Tensor core: tensors, autograd with higher-order gradients, CPU kernels.
        .target(name: "TensorCore", dependencies: ["LinearAlgebra", "SafeTensors", "Common", "CConvShim"]),

        // Modules with PyTorch state-dict names, and the models built from them.
        .target(name: "NN", dependencies: ["TensorCore", "SafeTensors"]),
        .target(name: "Models", dependencies: ["NN", "TensorCore", "SafeTensors", "Common"]),
        .target(name: "FeatureMetrics", dependencies: ["Models", "TensorCore", "LinearAlgebra", "Communication"]),

        // Datasets: preparation (CUB, class folders, built-in demo), the prepared format, the loader.
        .target(name: "Datasets", dependencies: ["Common", "ImageCodecs", "TensorCore", "Communication"]),

        // Using trained networks: sampling a generator across ranks, feature detectors, the FID pipeline.
        .target(name: "Evaluation", dependencies: ["Common", "LinearAlgebra", "Communication", "ImageCodecs", "SafeTensors", "TensorCore", "Models", "FeatureMetrics", "Datasets"]),

        // The concept explorer: a local web page and JSON API over a loaded ensemble.
        .target(name: "Explorer", dependencies: ["Common", "Communication", "Datasets", "Evaluation", "ImageCodecs", "Models", "TensorCore",
                                                 .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log")]),

        // Training engine: data parallelism, optimizers, schedules, checkpoints, logs, reports, trainers.
        .target(name: "Training", dependencies: ["Common", "LinearAlgebra", "Communication", "Zstd", "SafeTensors", "TensorCore", "NN", "Models", "Datasets", "FeatureMetrics", "Evaluation", "ImageCodecs"]),

        // Helpers shared by the test targets (golden cases, tolerances, pgen).
        .target(name: "TestSupport", dependencies: ["TensorCore", "NN", "SafeTensors", "Common"]),

        // The command-line tool.
        .executableTarget(
            name: "ViscoinCLI",
            dependencies: [
                "Common", "LinearAlgebra", "Communication", "ImageCodecs", "Zstd", "SafeTensors", "TensorCore", "NN", "Models", "FeatureMetrics", "Datasets",
                "Evaluation", "Training", "Explorer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Tests (Swift Testing). Integration tests start real `mpirun` jobs of the built binary.
        .testTarget(
            name: "FoundationTests",
            dependencies: ["Common", "LinearAlgebra", "Communication", "ImageCodecs", "Zstd", "SafeTensors"]
        ),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport", "Common", "LinearAlgebra"]),
        .testTarget(name: "ModelTests", dependencies: ["Models", "FeatureMetrics", "NN", "TensorCore", "TestSupport", "Common"]),
        .testTarget(name: "DatasetTests", dependencies: ["Datasets", "ImageCodecs", "TensorCore", "Communication", "Common", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Evaluation", "LinearAlgebra", "Datasets", "Models", "NN", "TensorCore", "Communication", "Common", "TestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Common", "SafeTensors", "LinearAlgebra"]),
    ]
)
