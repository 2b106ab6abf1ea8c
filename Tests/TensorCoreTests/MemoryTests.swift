// Memory: the buffer pool's size classes and reuse, operations that keep an input only for a
// gradient somebody can want, and activation recomputation (same gradients, first and second
// order, without keeping the body's intermediate tensors).
import Testing
import TensorCore
import TestSupport

@Suite struct MemoryTests {
    @Test func sizeClassesHoldTheRequestWithAtMostAnEighthMore() {
        var counts = Array(4096...20_000)
        let g = RandomGenerator(seed: 3)
        counts += g.uniform([2000], low: 13, high: 30).toArray().map { Int(Float(2).squareRoot() * Float(1 << Int($0)) * (1 + $0 - $0.rounded(.down))) }
        for n in counts {
            let c = BufferPool.sizeClass(n), capacity = BufferPool.classCapacity(c)
            #expect(capacity >= n && capacity * 8 <= n * 9 + 8, "class \(c) of \(n) holds \(capacity)")
            #expect(BufferPool.sizeClass(capacity) == c)
            #expect(BufferPool.classCapacity(c - 1) < n, "a smaller class would do for \(n)")
        }
    }

    @Test func releasedBuffersServeTheirClassAndTheTwoBelow() {
        let pool = BufferPool(maxPooledBytes: 1 << 30)
        let big = pool.acquire(100_000)
        #expect(big.capacity >= 100_000 && pool.usage.liveBytes == big.capacity * 4)
        pool.release(big.pointer, capacity: big.capacity)
        #expect(pool.usage.liveBytes == 0 && pool.usage.peakLiveBytes == big.capacity * 4)
        // Two classes smaller: reused (the capacity stays the big one's).
        let smaller = pool.acquire(BufferPool.classCapacity(BufferPool.sizeClass(100_000) - 2))
        #expect(smaller.pointer == big.pointer && smaller.capacity == big.capacity)
        pool.release(smaller.pointer, capacity: smaller.capacity)
        // Three classes smaller: a fresh buffer, the big one stays pooled.
        let small = pool.acquire(BufferPool.classCapacity(BufferPool.sizeClass(100_000) - 3))
        #expect(small.pointer != big.pointer)
        #expect(pool.statistics.pooledBytes == big.capacity * 4)
        pool.release(small.pointer, capacity: small.capacity)
        pool.resetPeak()
        #expect(pool.usage.peakLiveBytes == 0)
        pool.trim()
        #expect(pool.statistics.pooledBytes == 0)
    }

    /// Whether `make` returns a tensor the graph (rooted at what `use` returns) keeps alive.
    func kept(_ make: () -> Tensor, _ use: (Tensor) -> Tensor) -> Bool {
        weak var storage: TensorStorage?
        var result: Tensor?
        do {
            let t = make()
            storage = t.storage
            result = use(t)
        }
        #expect(result?.requiresGrad == true)
        return storage != nil
    }

    @Test func frozenOperandsDoNotKeepTheOtherInput() {
        let g = RandomGenerator(seed: 1)
        let x = g.normal([2, 3, 6, 6]), w = g.normal([4, 3, 3, 3]), scale = g.normal([4]), shift = g.normal([4])
        x.requiresGrad = true
        // A convolution with a frozen weight needs only the weight for the input's gradient.
        #expect(!kept({ x * 2 }, { conv2d($0, w, padding: 1) }))
        // Evaluation-mode batch norm (frozen scale and shift) keeps nothing of its input.
        #expect(!kept({ conv2d(x, w, padding: 1) }, { channelAffine($0, scale: scale, shift: shift) }))
        #expect(!kept({ conv2d(x, w, padding: 1) }, { channelAffine($0, scale: scale, shift: shift, relu: true) }))
        // Products with a constant keep only the constant.
        let c = g.normal([2, 3, 6, 6])
        #expect(!kept({ x * 2 }, { $0 * c }))
        #expect(!kept({ x * 2 }, { $0 / c }))
        // A trainable weight or scale still keeps the input its gradient needs.
        let trainable = w.copy()
        trainable.requiresGrad = true
        #expect(kept({ x * 2 }, { conv2d($0, trainable, padding: 1) }))
        let trainableScale = scale.copy()
        trainableScale.requiresGrad = true
        #expect(kept({ conv2d(x, w, padding: 1) }, { channelAffine($0, scale: trainableScale, shift: shift) }))
        #expect(kept({ x * 2 }, { c / $0 }))
    }

    func body(_ t: [Tensor], _ w: Tensor, _ inner: ((Tensor) -> Void)? = nil) -> Tensor {
        let h = conv2d(t[0], t[1], padding: 1).tanh()
        inner?(h)
        return conv2d(h, w, padding: 1).square().sum()
    }

    @Test func recomputedGradientsAreBitwiseThoseOfTheRecordedBody() {
        let g = RandomGenerator(seed: 2)
        let x = g.normal([2, 3, 7, 7]), w1 = g.normal([5, 3, 3, 3]) * 0.3, w2 = g.normal([2, 5, 3, 3]) * 0.3
        for t in [x, w1] { t.requiresGrad = true }
        let plain = Autograd.grad(of: [body([x, w1], w2)], wrt: [x, w1])
        weak var intermediate: TensorStorage?
        let loss = recomputed([x, w1]) { self.body($0, w2) { intermediate = $0.storage } }
        #expect(intermediate == nil, "the forward pass kept the body's activations")
        let again = Autograd.grad(of: [loss], wrt: [x, w1])
        for (a, b) in zip(plain, again) { #expect(a!.toArray() == b!.toArray()) }
        // Second order (the gradient's graph reaches the inputs): d/dx of |d loss/dx|^2.
        func gradientPenalty(_ l: Tensor) -> Tensor {
            Autograd.grad(of: [l], wrt: [x], createGraph: true)[0]!.square().sum()
        }
        let plainSecond = Autograd.grad(of: [gradientPenalty(body([x, w1], w2))], wrt: [x, w1])
        let recomputedSecond = Autograd.grad(of: [gradientPenalty(recomputed([x, w1]) { self.body($0, w2) })], wrt: [x, w1])
        for (a, b) in zip(plainSecond, recomputedSecond) { #expect(a!.toArray() == b!.toArray()) }
        // Nothing to differentiate: the body simply runs.
        #expect(noGrad { recomputed([x, w1]) { self.body($0, w2) } }.requiresGrad == false)
    }
}
