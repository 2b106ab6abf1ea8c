// bfloat16 matrix products: float32 operands rounded to bf16 (round to nearest even), products
// accumulated in float32, float32 result; on oneDNN's bf16 GEMM (AVX512-BF16 / AVX-512 kernels),
// or, where oneDNN has none for this CPU, on OpenBLAS sgemm of the bf16-rounded operands (the
// same arithmetic: a product of two bf16 values is exact in float32).
#ifndef VBF16_H
#define VBF16_H

#include <stdint.h>

/// The bf16 value nearest to `x` (ties to even), as its 16 bits; NaN stays NaN (quiet).
uint16_t vbf16_from_float(float x);

/// The float32 with the bits of `bits` in its upper half (exact).
float vbf16_to_float(uint16_t bits);

/// Rounds `count` floats to their nearest bf16 values, in place (stored as float32).
void vbf16_round_floats(float *values, long count);

/// C = alpha * op(A) * op(B) + beta * C, row-major, op(A) m x k, op(B) k x n; lda, ldb, ldc are
/// the row strides of the stored matrices (as cblas_sgemm with CblasRowMajor). A and B are
/// rounded to bf16 in thread-local scratch buffers (reused, grown on demand). Returns 0, or -1
/// when a scratch buffer cannot be allocated (C untouched).
int vbf16_gemm(int transa, int transb, long m, long n, long k, float alpha, const float *a, long lda,
               const float *b, long ldb, float beta, float *c, long ldc);

/// 1 when oneDNN's bf16 GEMM runs on this CPU (under its ISA limit), 0 when the OpenBLAS
/// fallback does. Probed once.
int vbf16_native(void);

/// The kernel behind vbf16_gemm, for `viscoin env` and the benchmark lines.
const char *vbf16_kernel(void);

/// Frees this thread's scratch buffers.
void vbf16_release_scratch(void);

#endif
