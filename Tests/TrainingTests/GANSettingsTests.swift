// train-gan's presets and bookkeeping arithmetic (training.md numerical checks 1-3 and 8,
// augment.md check 7): lazy-regularisation Adam settings, EMA beta, the auto formulas, ADA's
// step, iteration counts, and the batch split checks.
import Common
import Testing
import Training

@Suite struct GANSettingsTests {
    func resolve(_ cfg: GANPreset, resolution: Int, ranks: Int = 1, _ edit: (inout GANTrainingConfig) -> Void = { _ in }) throws -> GANSettings {
        var c = GANTrainingConfig(data: "d", run: "r")
        c.cfg = cfg
        c.metrics = GANMetric("none")!
        edit(&c)
        return try GANSettings.resolve(c, resolution: resolution, worldSize: ranks, resumingNetwork: false)
    }

    @Test func lazyRegularisationAdamSettings() throws {
        let s = try resolve(.auto, resolution: 256)
        #expect(abs(s.gAdam[0] - 0.002) < 1e-12 && abs(s.gAdam[2] - 0.9919920) < 1e-7 && s.gAdam[1] == 0)
        #expect(abs(s.dAdam[0] - 0.0023529412) < 1e-10 && abs(s.dAdam[2] - 0.9905855) < 1e-7)
        let both = try resolve(.auto, resolution: 256) { $0.noLazyReg = true }
        #expect(both.gAdam == [0.0025, 0, 0.99] && both.gRegInterval == nil && both.dRegInterval == nil)
    }

    @Test func autoFormulas() throws {
        let s256 = try resolve(.auto, resolution: 256)
        #expect(s256.batch == 16 && s256.mbstdGroup == 4 && abs(s256.gamma - 0.8192) < 1e-12 && s256.emaKimg == 5 && s256.channelBase == 16384)
        #expect(s256.mappingLayers == 2 && s256.emaRampup == 0.05 && s256.lr == 0.0025)
        let s512 = try resolve(.auto, resolution: 512)
        #expect(s512.batch == 8 && s512.mbstdGroup == 4 && s512.channelBase == 32768 && abs(s512.gamma - 6.5536) < 1e-12 && s512.emaKimg == 2.5)
        let paper = try resolve(.paper256, resolution: 256)
        #expect(paper.batch == 64 && paper.batchGpu == 8 && paper.rounds == 8 && paper.mbstdGroup == 8 && paper.mappingLayers == 8 && paper.gamma == 1)
        // auto on 2 ranks: mb = min(2 * 16, 64), one round of 16 per rank.
        let two = try resolve(.auto, resolution: 256, ranks: 2)
        #expect(two.batch == 32 && two.batchGpu == 16 && two.rounds == 1)
    }

    @Test func emaBetaAndADAStep() throws {
        let s = try resolve(.auto, resolution: 256) { $0.emaKimg = 5 }
        var noRamp = s
        noRamp.emaRampup = nil
        let beta = noRamp.emaBeta(imagesSeen: 1_000_000)
        #expect(abs(beta - 0.99778439) < 1e-8)
        #expect(abs((1 - beta) - 0.00221561) < 1e-8, "one EMA step from p_ema = 0 towards p = 1")
        #expect(s.emaBeta(imagesSeen: 0) == 0, "the ramp-up starts G_ema as a copy of G")
        var resumed = try GANSettings.resolve(GANTrainingConfig(data: "d", run: "r"), resolution: 256, worldSize: 1, resumingNetwork: true)
        #expect(resumed.adaKimg == 100 && resumed.emaRampup == nil)
        resumed.batch = 16
        #expect(abs(resumed.adaStep(signMean: 0.7, target: 0.6) - 0.00064) < 1e-12)
        #expect(max(0 + resumed.adaStep(signMean: 0.5, target: 0.6), 0) == 0)
    }

    @Test func iterationCounts() throws {
        let s = try resolve(.auto, resolution: 256) { $0.kimg = 1000 }
        #expect(s.totalSteps == 62_500)
        #expect((0..<s.totalSteps).filter { $0 % 4 == 0 }.count == 15_625 && (0..<s.totalSteps).filter { $0 % 16 == 0 }.count == 3_907)
    }

    @Test func batchSplitsAreChecked() throws {
        #expect(throws: ConfigurationError.self) { try resolve(.tiny, resolution: 32) { $0.batch = 30; $0.batchGpu = 8 } }
        #expect(throws: ConfigurationError.self) { try resolve(.tiny, resolution: 32) { $0.batch = 12; $0.batchGpu = 6 } }
        let s = try resolve(.tiny, resolution: 32, ranks: 2) { $0.batch = 16; $0.batchGpu = 4 }
        #expect(s.rounds == 2 && s.zDim == 64 && s.channelMax == 64)
        #expect(GANMetric("fid50k_full")?.images == 50_000 && GANMetric("fid2k")?.images == 2000 && GANMetric("fid500")?.images == 500 && GANMetric("fid1k")?.images == 1000)
        #expect(GANMetric("fid") == nil && GANMetric("fidk") == nil && GANMetric("none")?.isNone == true)
        var c = GANTrainingConfig(data: "d", run: "r")
        c.metrics = GANMetric("fid2k")!
        #expect(throws: ConfigurationError.self) { try c.validate(worldSize: 1) }
    }
}
