// bfloat16 matrix products for --precision bf16 (see include/vbf16.h). Operands are converted
// per call: weights change every step, and the conversion is O(mk + kn) against the O(mkn)
// product.
#include "vbf16.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// Exported by libdnnl 2.6 but not declared in its C header.
dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K, float alpha,
                                    const uint16_t *A, dnnl_dim_t lda, const uint16_t *B, dnnl_dim_t ldb, float beta,
                                    float *C, dnnl_dim_t ldc);

uint16_t vbf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float vbf16_to_float(uint16_t bits) {
    uint32_t u = (uint32_t)bits << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// Branch-free forms of the above for the conversion loops (vectorised by the compiler).
static inline uint32_t round_bits(uint32_t u) {
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    uint32_t quiet = (u | 0x00400000u) & 0xffff0000u;
    return ((u & 0x7fffffffu) > 0x7f800000u) ? quiet : rounded;
}

void vbf16_round_floats(float *values, long count) {
    uint32_t *bits = (uint32_t *)values;
    for (long i = 0; i < count; i++) bits[i] = round_bits(bits[i]);
}

// rows x cols stored with row stride ld -> compact bf16 (row stride cols).
static void to_bf16(const float *src, long rows, long cols, long ld, uint16_t *dst) {
    for (long r = 0; r < rows; r++) {
        const uint32_t *s = (const uint32_t *)(src + r * ld);
        uint16_t *d = dst + r * cols;
        for (long j = 0; j < cols; j++) d[j] = (uint16_t)(round_bits(s[j]) >> 16);
    }
}

// The same, to bf16-valued floats (for the OpenBLAS fallback).
static void to_rounded_floats(const float *src, long rows, long cols, long ld, float *dst) {
    for (long r = 0; r < rows; r++) {
        const uint32_t *s = (const uint32_t *)(src + r * ld);
        uint32_t *d = (uint32_t *)(dst + r * cols);
        for (long j = 0; j < cols; j++) d[j] = round_bits(s[j]);
    }
}

typedef struct {
    void *data;
    size_t bytes;
} scratch;

static _Thread_local scratch scratch_a, scratch_b;

static void *reserve(scratch *s, size_t bytes) {
    if (s->bytes >= bytes) return s->data;
    size_t want = bytes + bytes / 4;
    void *p = NULL;
    if (posix_memalign(&p, 64, want) != 0) return NULL;
    free(s->data);
    s->data = p;
    s->bytes = want;
    return p;
}

void vbf16_release_scratch(void) {
    free(scratch_a.data);
    free(scratch_b.data);
    memset(&scratch_a, 0, sizeof scratch_a);
    memset(&scratch_b, 0, sizeof scratch_b);
}

static int native = -1;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

// One small product: oneDNN answers dnnl_unimplemented when its ISA limit (ONEDNN_MAX_CPU_ISA)
// or the CPU has no bf16 GEMM kernel.
static void probe(void) {
    uint16_t a[4], b[4];
    float c[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++) { a[i] = vbf16_from_float((float)(i + 1)); b[i] = vbf16_from_float((float)(2 - i)); }
    dnnl_status_t status = dnnl_gemm_bf16bf16f32('N', 'N', 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    // [[1,2],[3,4]] x [[2,1],[0,-1]] = [[2,-1],[6,-1]]
    native = status == dnnl_success && c[0] == 2 && c[1] == -1 && c[2] == 6 && c[3] == -1;
}

int vbf16_native(void) {
    pthread_once(&probe_once, probe);
    return native;
}

const char *vbf16_kernel(void) {
    return vbf16_native() ? "oneDNN bf16 gemm (float32 accumulation)"
                          : "bf16-rounded operands on OpenBLAS sgemm (oneDNN has no bf16 gemm under this ISA limit)";
}

int vbf16_gemm(int transa, int transb, long m, long n, long k, float alpha, const float *a, long lda,
               const float *b, long ldb, float beta, float *c, long ldc) {
    // Stored shapes: A is (transa ? k x m : m x k), B is (transb ? n x k : k x n).
    long a_rows = transa ? k : m, a_cols = transa ? m : k;
    long b_rows = transb ? n : k, b_cols = transb ? k : n;
    size_t a_count = (size_t)a_rows * (size_t)a_cols, b_count = (size_t)b_rows * (size_t)b_cols;
    if (vbf16_native()) {
        uint16_t *a16 = reserve(&scratch_a, a_count * sizeof(uint16_t));
        uint16_t *b16 = reserve(&scratch_b, b_count * sizeof(uint16_t));
        if (!a16 || !b16) return -1;
        to_bf16(a, a_rows, a_cols, lda, a16);
        to_bf16(b, b_rows, b_cols, ldb, b16);
        dnnl_status_t status = dnnl_gemm_bf16bf16f32(transa ? 'T' : 'N', transb ? 'T' : 'N', m, n, k, alpha, a16, a_cols,
                                                     b16, b_cols, beta, c, ldc);
        if (status == dnnl_success) return 0;
        // Not expected after a successful probe; the fallback gives the same arithmetic.
    }
    float *ar = reserve(&scratch_a, a_count * sizeof(float));
    float *br = reserve(&scratch_b, b_count * sizeof(float));
    if (!ar || !br) return -1;
    to_rounded_floats(a, a_rows, a_cols, lda, ar);
    to_rounded_floats(b, b_rows, b_cols, ldb, br);
    cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                alpha, ar, (int)a_cols, br, (int)b_cols, beta, c, (int)ldc);
    return 0;
}
