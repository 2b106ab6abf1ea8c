// Implementation of the vcodec shim (see include/vcodec.h).
#include "vcodec.h"

#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <tiffio.h>

static void set_message(char *message, const char *format, ...) {
    if (!message) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message, VCODEC_MESSAGE_CAPACITY, format, args);
    va_end(args);
}

void vcodec_free(void *pointer) { free(pointer); }

const char *vcodec_png_version(void) { return PNG_LIBPNG_VER_STRING; }
int vcodec_jpeg_version(void) { return JPEG_LIB_VERSION; }
const char *vcodec_tiff_version(void) { return TIFFGetVersion(); }

static int check_dimensions(long width, long height, char *message) {
    if (width <= 0 || height <= 0) {
        set_message(message, "invalid image dimensions %ldx%ld", width, height);
        return 1;
    }
    if (width > 1000000 || height > 1000000 || width * height > VCODEC_MAX_PIXELS) {
        set_message(message, "image dimensions %ldx%ld exceed the supported maximum", width, height);
        return 1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// PNG decoding with the classic libpng API: its errors longjmp back into this function.
// 16-bit samples are scaled to 8 bits with rounding (value / 257), palettes and low bit
// depths are expanded, grey becomes RGB, alpha is dropped (as PIL's convert('RGB')), and no
// gamma correction is applied. png_read_end checks the data up to IEND, so a truncated file
// is an error.

typedef struct {
    const uint8_t *data;
    size_t length;
    size_t position;
    char message[VCODEC_MESSAGE_CAPACITY];
} vcodec_png_source;

static void vcodec_png_read(png_structp png, png_bytep out, png_size_t count) {
    vcodec_png_source *src = (vcodec_png_source *)png_get_io_ptr(png);
    if (count > src->length - src->position) {
        png_error(png, "unexpected end of file (truncated PNG)");
        return;
    }
    memcpy(out, src->data + src->position, count);
    src->position += count;
}

static void vcodec_png_error(png_structp png, png_const_charp text) {
    vcodec_png_source *src = (vcodec_png_source *)png_get_error_ptr(png);
    if (src && src->message[0] == 0) snprintf(src->message, sizeof(src->message), "%s", text);
    png_longjmp(png, 1);
}

static void vcodec_png_warning(png_structp png, png_const_charp text) { (void)png; (void)text; }

int vcodec_decode_png(const uint8_t *data, size_t length, vcodec_image *out, char *message) {
    memset(out, 0, sizeof(*out));
    if (length < 8 || png_sig_cmp(data, 0, 8) != 0) {
        set_message(message, "not a PNG file (bad signature)");
        return 1;
    }
    vcodec_png_source src;
    memset(&src, 0, sizeof(src));
    src.data = data;
    src.length = length;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, vcodec_png_error, vcodec_png_warning);
    if (!png) {
        set_message(message, "out of memory");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile rgb = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        set_message(message, "corrupt PNG: %s", src.message[0] ? src.message : "decoder error");
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(rgb);
        free(rows);
        return 1;
    }
    png_set_read_fn(png, &src, vcodec_png_read);
    png_set_user_limits(png, 1000000, 1000000);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if (check_dimensions(width, height, message)) {
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    int color_type = png_get_color_type(png, info);
    out->source_channels = png_get_channels(png, info);
    out->source_bits = png_get_bit_depth(png, info);
    if (color_type == PNG_COLOR_TYPE_PALETTE) out->source_channels = 3;
    png_set_expand(png);
    png_set_scale_16(png);
    png_set_strip_alpha(png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)width * 3) {
        set_message(message, "unsupported PNG layout (%zu bytes per row for width %u)", rowbytes, width);
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    rgb = (uint8_t *)malloc(rowbytes * height);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (!rgb || !rows) {
        set_message(message, "out of memory for a %ux%u PNG", width, height);
        png_destroy_read_struct(&png, &info, NULL);
        free(rgb);
        free(rows);
        return 1;
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = rgb + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->pixels = rgb;
    out->width = (int)width;
    out->height = (int)height;
    return 0;
}

// PNG encoding with the simplified API (reports errors without longjmp).

int vcodec_encode_png(const uint8_t *pixels, int width, int height, int channels,
                      uint8_t **out, size_t *out_length, char *message) {
    *out = NULL;
    *out_length = 0;
    if (channels != 1 && channels != 3) {
        set_message(message, "PNG encoder supports 1 or 3 channels, got %d", channels);
        return 1;
    }
    if (check_dimensions(width, height, message)) return 1;
    png_image image;
    memset(&image, 0, sizeof(image));
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&image, NULL, &size, 0, pixels, 0, NULL)) {
        set_message(message, "PNG encoding failed: %s", image.message);
        return 1;
    }
    uint8_t *buffer = (uint8_t *)malloc(size);
    if (!buffer) {
        set_message(message, "out of memory");
        return 1;
    }
    if (!png_image_write_to_memory(&image, buffer, &size, 0, pixels, 0, NULL)) {
        set_message(message, "PNG encoding failed: %s", image.message);
        free(buffer);
        return 1;
    }
    *out = buffer;
    *out_length = size;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// JPEG (libjpeg-turbo; errors longjmp back into this file, never into Swift)

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    int warnings;
    char warning[JMSG_LENGTH_MAX];
} vcodec_jpeg_error;

static void vcodec_jpeg_error_exit(j_common_ptr cinfo) {
    vcodec_jpeg_error *err = (vcodec_jpeg_error *)cinfo->err;
    longjmp(err->jump, 1);
}

static void vcodec_jpeg_emit_message(j_common_ptr cinfo, int level) {
    vcodec_jpeg_error *err = (vcodec_jpeg_error *)cinfo->err;
    if (level < 0) {  // a warning (corrupt data); trace messages have level >= 0
        if (err->warnings == 0) (*cinfo->err->format_message)(cinfo, err->warning);
        err->warnings++;
        err->base.num_warnings++;
    }
}

int vcodec_decode_jpeg(const uint8_t *data, size_t length, int strict, vcodec_image *out, char *message) {
    memset(out, 0, sizeof(*out));
    struct jpeg_decompress_struct cinfo;
    vcodec_jpeg_error err;
    memset(&err, 0, sizeof(err));
    // volatile: modified between setjmp and longjmp
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = vcodec_jpeg_error_exit;
    err.base.emit_message = vcodec_jpeg_emit_message;
    if (setjmp(err.jump)) {
        char text[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)((j_common_ptr)&cinfo, text);
        set_message(message, "corrupt JPEG: %s", text);
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    if (length < 4 || data[0] != 0xFF || data[1] != 0xD8) {
        set_message(message, "not a JPEG file (missing SOI marker)");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_mem_src(&cinfo, data, (unsigned long)length);
    jpeg_read_header(&cinfo, TRUE);
    if (check_dimensions(cinfo.image_width, cinfo.image_height, message)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    out->source_channels = cinfo.num_components;
    out->source_bits = cinfo.data_precision;
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int width = (int)cinfo.output_width, height = (int)cinfo.output_height;
    int comps = cinfo.output_components;
    if ((cmyk && comps != 4) || (!cmyk && comps != 3)) {
        set_message(message, "unsupported JPEG colour layout (%d components)", comps);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    rgb = (uint8_t *)malloc((size_t)width * height * 3);
    row = (uint8_t *)malloc((size_t)width * comps);
    if (!rgb || !row) {
        set_message(message, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return 1;
    }
    int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        JSAMPROW rows[1] = {cmyk ? row : rgb + (size_t)y * width * 3};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
            set_message(message, "truncated JPEG data at scanline %d of %d", y, height);
            jpeg_destroy_decompress(&cinfo);
            free(rgb);
            free(row);
            return 1;
        }
        if (cmyk) {
            uint8_t *dst = rgb + (size_t)y * width * 3;
            for (int x = 0; x < width; x++) {
                int c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
                if (!inverted) { c = 255 - c; m = 255 - m; yy = 255 - yy; k = 255 - k; }
                // Adobe CMYK JPEGs store inverted values: R = C' * K' / 255.
                dst[3 * x] = (uint8_t)((c * k + 127) / 255);
                dst[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
                dst[3 * x + 2] = (uint8_t)((yy * k + 127) / 255);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    int warnings = err.warnings;
    char warning[JMSG_LENGTH_MAX];
    memcpy(warning, err.warning, sizeof(warning));
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (strict && warnings > 0) {
        set_message(message, "corrupt or truncated JPEG data: %s", warning);
        free(rgb);
        return 1;
    }
    out->pixels = rgb;
    out->width = width;
    out->height = height;
    return 0;
}

int vcodec_encode_jpeg(const uint8_t *pixels, int width, int height, int channels, int quality,
                       uint8_t **out, size_t *out_length, char *message) {
    *out = NULL;
    *out_length = 0;
    if (channels != 1 && channels != 3 && channels != 4) {
        set_message(message, "JPEG encoder supports 1, 3 or 4 (CMYK) channels, got %d", channels);
        return 1;
    }
    if (check_dimensions(width, height, message)) return 1;
    struct jpeg_compress_struct cinfo;
    vcodec_jpeg_error err;
    memset(&err, 0, sizeof(err));
    unsigned char *volatile buffer = NULL;
    unsigned long size = 0;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = vcodec_jpeg_error_exit;
    err.base.emit_message = vcodec_jpeg_emit_message;
    if (setjmp(err.jump)) {
        char text[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)((j_common_ptr)&cinfo, text);
        set_message(message, "JPEG encoding failed: %s", text);
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    unsigned char *mem = NULL;
    jpeg_mem_dest(&cinfo, &mem, &size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : (channels == 4 ? JCS_CMYK : JCS_RGB);
    jpeg_set_defaults(&cinfo);
    if (channels == 4) jpeg_set_colorspace(&cinfo, JCS_CMYK);  // writes an Adobe marker
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rows[1] = {(JSAMPROW)(pixels + (size_t)cinfo.next_scanline * width * channels)};
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    buffer = mem;
    jpeg_destroy_compress(&cinfo);
    *out = (uint8_t *)buffer;
    *out_length = size;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// TIFF (libtiff reading from memory through client procedures; per-handle error capture)

typedef struct {
    const uint8_t *data;
    size_t length;
    size_t position;
} vcodec_tiff_stream;

static tsize_t tiff_read(thandle_t handle, tdata_t buffer, tsize_t size) {
    vcodec_tiff_stream *s = (vcodec_tiff_stream *)handle;
    if (size <= 0 || s->position >= s->length) return 0;
    size_t n = (size_t)size;
    if (n > s->length - s->position) n = s->length - s->position;
    memcpy(buffer, s->data + s->position, n);
    s->position += n;
    return (tsize_t)n;
}

static tsize_t tiff_write(thandle_t handle, tdata_t buffer, tsize_t size) {
    (void)handle; (void)buffer; (void)size;
    return 0;
}

static toff_t tiff_seek(thandle_t handle, toff_t offset, int whence) {
    vcodec_tiff_stream *s = (vcodec_tiff_stream *)handle;
    uint64_t base;
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = s->position; break;
    case SEEK_END: base = s->length; break;
    default: return (toff_t)-1;
    }
    uint64_t target = base + offset;
    if (target < base) return (toff_t)-1;
    s->position = (size_t)target;
    return target;
}

static int tiff_close(thandle_t handle) { (void)handle; return 0; }
static toff_t tiff_size(thandle_t handle) { return ((vcodec_tiff_stream *)handle)->length; }
static int tiff_map(thandle_t handle, tdata_t *base, toff_t *size) {
    vcodec_tiff_stream *s = (vcodec_tiff_stream *)handle;
    *base = (tdata_t)s->data;
    *size = s->length;
    return 1;
}
static void tiff_unmap(thandle_t handle, tdata_t base, toff_t size) { (void)handle; (void)base; (void)size; }

typedef struct {
    char message[VCODEC_MESSAGE_CAPACITY];
    int errors;
} vcodec_tiff_errors;

static int tiff_error_handler(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)module;
    vcodec_tiff_errors *e = (vcodec_tiff_errors *)user;
    if (e && e->errors == 0) vsnprintf(e->message, sizeof(e->message), fmt, ap);
    if (e) e->errors++;
    return 1;
}

static int tiff_warning_handler(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)user; (void)module; (void)fmt; (void)ap;
    return 1;  // warnings (unknown tags etc.) are ignored
}

int vcodec_decode_tiff(const uint8_t *data, size_t length, vcodec_image *out, char *message) {
    memset(out, 0, sizeof(*out));
    if (length < 8 || !((data[0] == 'I' && data[1] == 'I') || (data[0] == 'M' && data[1] == 'M'))) {
        set_message(message, "not a TIFF file (missing byte-order mark)");
        return 1;
    }
    vcodec_tiff_stream stream = {data, length, 0};
    vcodec_tiff_errors errors;
    memset(&errors, 0, sizeof(errors));
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) {
        set_message(message, "out of memory");
        return 1;
    }
    TIFFOpenOptionsSetErrorHandlerExtR(options, tiff_error_handler, &errors);
    TIFFOpenOptionsSetWarningHandlerExtR(options, tiff_warning_handler, NULL);
    TIFF *tif = TIFFClientOpenExt("memory", "rm", (thandle_t)&stream, tiff_read, tiff_write, tiff_seek,
                                  tiff_close, tiff_size, tiff_map, tiff_unmap, options);
    TIFFOpenOptionsFree(options);
    if (!tif) {
        set_message(message, "not a readable TIFF: %s", errors.errors ? errors.message : "open failed");
        return 1;
    }
    uint32_t width = 0, height = 0;
    uint16_t spp = 1, bps = 8;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    if (check_dimensions(width, height, message)) {
        TIFFClose(tif);
        return 1;
    }
    out->source_channels = spp;
    out->source_bits = bps;
    char reason[1024];
    if (!TIFFRGBAImageOK(tif, reason)) {
        set_message(message, "unsupported TIFF layout: %s", reason);
        TIFFClose(tif);
        return 1;
    }
    size_t count = (size_t)width * height;
    uint32_t *raster = (uint32_t *)_TIFFmalloc((tmsize_t)(count * sizeof(uint32_t)));
    if (!raster) {
        set_message(message, "out of memory for a %ux%u TIFF", width, height);
        TIFFClose(tif);
        return 1;
    }
    int ok = TIFFReadRGBAImageOriented(tif, width, height, raster, ORIENTATION_TOPLEFT, 0);
    if (!ok || errors.errors) {
        set_message(message, "corrupt TIFF data: %s", errors.errors ? errors.message : "read failed");
        _TIFFfree(raster);
        TIFFClose(tif);
        return 1;
    }
    uint8_t *rgb = (uint8_t *)malloc(count * 3);
    if (!rgb) {
        set_message(message, "out of memory");
        _TIFFfree(raster);
        TIFFClose(tif);
        return 1;
    }
    for (size_t i = 0; i < count; i++) {
        uint32_t p = raster[i];
        rgb[3 * i] = (uint8_t)TIFFGetR(p);
        rgb[3 * i + 1] = (uint8_t)TIFFGetG(p);
        rgb[3 * i + 2] = (uint8_t)TIFFGetB(p);
    }
    _TIFFfree(raster);
    TIFFClose(tif);
    out->pixels = rgb;
    out->width = (int)width;
    out->height = (int)height;
    return 0;
}
