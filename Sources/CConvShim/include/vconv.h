// Convolutions on oneDNN's direct kernels, for tensors in our plain NCHW / OIHW layout.
#ifndef VCONV_H
#define VCONV_H

/// One convolution geometry (PyTorch conv2d: correlation, symmetric padding, groups).
typedef struct {
    int n, c, h, w;      // input
    int o, kh, kw;       // weight [o, c / groups, kh, kw]
    int sh, sw, ph, pw;  // stride, padding
    int groups;
    int oh, ow;          // output
} vconv_geometry;

enum { VCONV_FORWARD = 0, VCONV_BACKWARD_DATA = 1 };

/// kind VCONV_FORWARD: out[n, o, oh, ow] = conv(in[n, c, h, w], weight).
/// kind VCONV_BACKWARD_DATA: out[n, c, h, w] = conv^T(in[n, o, oh, ow], weight) (overwritten).
/// Primitives are cached by geometry; activations are reordered into the library's blocked
/// layout and back through reused scratch buffers. Calls are serialised. Returns 0 on success,
/// otherwise a oneDNN status (`out` may be partly written): the caller then uses its own kernel,
/// which overwrites `out`. Geometries without a direct (jit) kernel are refused, and remembered.
int vconv_run(int kind, const vconv_geometry *g, const float *in, const float *weight, float *out);

/// The implementation oneDNN chose for the last successful call of `kind` (for benchmarks).
const char *vconv_last_implementation(int kind);

/// Frees the cached primitives and scratch buffers.
void vconv_reset(void);

#endif
