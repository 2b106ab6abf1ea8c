// Peak multiply-add rate of one core for float32 FMA (vfmadd231ps), the bf16 dot product
// (vdpbf16ps, AVX512-BF16) and float16 FMA (vfmadd*ph, AVX512-FP16): 12 independent
// accumulator chains of 512-bit registers, so throughput and not latency is measured. The
// README's "--precision bf16" section quotes it: it says whether bf16 can beat float32 here.
// Not part of the build; the CPU's own units only, no memory traffic.
//   cc -O2 -o /tmp/fma_peak tools/fma_peak.c && /tmp/fma_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

enum { iterations = 100000000, chains = 12 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Twelve named accumulators (an array would be kept in memory, and measure loads and stores).
#define TWELVE(step) step(a0) step(a1) step(a2) step(a3) step(a4) step(a5) step(a6) step(a7) step(a8) step(a9) step(a10) step(a11)
#define KEEP __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), \
                              "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11))

// Declares the accumulators a0...a11 of `type`, all `initial`, applies `update` (a macro of one
// accumulator) to each for `iterations` rounds and leaves the time taken in `seconds`.
#define TIMED_CHAINS(type, initial, update, seconds)                                                  \
    type a0 = (initial), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, \
         a10 = a0, a11 = a0;                                                                          \
    double seconds = now();                                                                           \
    for (long i = 0; i < iterations; i++) {                                                           \
        TWELVE(update)                                                                                \
        KEEP;                                                                                         \
    }                                                                                                 \
    seconds = now() - seconds;

// GFLOP/s of `flops` per instruction (a multiply-add counts 2) over every chain and round.
static double gflops(int flops, double seconds) { return (double)iterations * chains * flops / seconds / 1e9; }

// Each function returns GFLOP/s and adds to `sink` a value that keeps the chains live.
__attribute__((target("avx512f"))) static double float32FMA(float *sink) {
    __m512 x = _mm512_set1_ps(1.0f);
#define UPDATE(a) a = _mm512_fmadd_ps(x, x, a);
    TIMED_CHAINS(__m512, _mm512_set1_ps(1e-9f), UPDATE, seconds)
#undef UPDATE
    *sink += _mm512_reduce_add_ps(_mm512_add_ps(a0, a11));
    return gflops(16 * 2, seconds);
}

__attribute__((target("avx512f,avx512bf16"))) static double bf16DotProduct(float *sink) {
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80); // 1.0 in bf16
#define UPDATE(a) a = _mm512_dpbf16_ps(a, x, x);
    TIMED_CHAINS(__m512, _mm512_set1_ps(1e-9f), UPDATE, seconds)
#undef UPDATE
    *sink += _mm512_reduce_add_ps(_mm512_add_ps(a0, a11));
    return gflops(32 * 2, seconds); // 16 lanes x 2 products each
}

__attribute__((target("avx512f,avx512fp16"))) static double float16FMA(float *sink) {
    __m512h x = _mm512_set1_ph(0);
#define UPDATE(a) a = _mm512_fmadd_ph(x, x, a);
    TIMED_CHAINS(__m512h, _mm512_set1_ph(0), UPDATE, seconds)
#undef UPDATE
    *sink += (float)_mm512_reduce_add_ph(_mm512_add_ph(a0, a11));
    return gflops(32 * 2, seconds);
}

int main(void) {
    float sink = 0;
    if (!__builtin_cpu_supports("avx512f")) {
        printf("this CPU has no AVX-512\n");
        return 1;
    }
    printf("float32 FMA (vfmadd231ps):   %6.1f GFLOP/s per core\n", float32FMA(&sink));
    if (__builtin_cpu_supports("avx512bf16"))
        printf("bf16 dot product (vdpbf16ps): %6.1f GFLOP/s per core\n", bf16DotProduct(&sink));
    else
        printf("bf16 dot product: no AVX512-BF16 on this CPU\n");
    if (__builtin_cpu_supports("avx512fp16"))
        printf("float16 FMA (vfmadd*ph):     %6.1f GFLOP/s per core\n", float16FMA(&sink));
    else
        printf("float16 FMA: no AVX512-FP16 on this CPU\n");
    return sink > 1e30f;
}
