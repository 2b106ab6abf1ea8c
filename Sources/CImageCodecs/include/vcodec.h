// vcodec: C shim for PNG, JPEG and TIFF decoding to RGB8 and PNG/JPEG encoding.
// libjpeg reports errors by longjmp, which Swift cannot survive: every call here catches
// errors on the C side and returns a code plus a message. Memory returned in `pixels` /
// `data` is allocated with malloc and released with vcodec_free.
#ifndef VCODEC_H
#define VCODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VCODEC_MESSAGE_CAPACITY 256

/// A decoded image: interleaved RGB, 8 bits per channel, row-major, no padding.
typedef struct {
    uint8_t *pixels;
    int width;
    int height;
    /// Channel count of the source (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA / CMYK) for information.
    int source_channels;
    /// Bits per sample of the source (8 or 16 usually).
    int source_bits;
} vcodec_image;

/// Largest pixel count accepted by the decoders (guards against absurd header dimensions).
#define VCODEC_MAX_PIXELS (1L << 28)

/// Each returns 0 on success, otherwise non-zero with a NUL-terminated reason in `message`.
int vcodec_decode_png(const uint8_t *data, size_t length, vcodec_image *out, char *message);
/// `strict`: libjpeg warnings (e.g. data truncated mid-scan, which libjpeg pads with grey) are errors.
int vcodec_decode_jpeg(const uint8_t *data, size_t length, int strict, vcodec_image *out, char *message);
int vcodec_decode_tiff(const uint8_t *data, size_t length, vcodec_image *out, char *message);

/// Encodes `channels` interleaved 8-bit samples (PNG: 1 or 3; JPEG: 1, 3, or 4 = CMYK stored
/// as given, with an Adobe marker). `*out` is malloc'ed.
int vcodec_encode_png(const uint8_t *pixels, int width, int height, int channels,
                      uint8_t **out, size_t *out_length, char *message);
int vcodec_encode_jpeg(const uint8_t *pixels, int width, int height, int channels, int quality,
                       uint8_t **out, size_t *out_length, char *message);

void vcodec_free(void *pointer);

/// Library versions for `viscoin env`.
const char *vcodec_png_version(void);
int vcodec_jpeg_version(void);
const char *vcodec_tiff_version(void);

#ifdef __cplusplus
}
#endif
#endif
