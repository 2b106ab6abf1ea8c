// Direct convolutions on oneDNN (forward and backward-data) behind our NCHW interface: a
// small cache of primitives by geometry, reorders into and out of the blocked layouts the
// library picks (format_tag_any), and scratch buffers that grow and are reused, so steady-state
// training allocates nothing. One call at a time (a mutex): each call is multi-threaded inside.
#include "vconv.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SIZE 96

typedef struct {
    int used;
    int kind;
    vconv_geometry g;
    unsigned long last_use;
    dnnl_primitive_t conv;
    // Reorders: plain input -> primitive input, plain weight -> primitive weight, primitive
    // output -> plain output; NULL when the layouts already agree.
    dnnl_primitive_t in_reorder, weight_reorder, out_reorder;
    dnnl_memory_desc_t in_plain, weight_plain, out_plain, in_md, weight_md, out_md;
    size_t in_bytes, weight_bytes, out_bytes, scratch_bytes;
    int unsupported;  // the library has no direct kernel for it: remembered, not retried
    char impl[64];
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static entry cache[CACHE_SIZE];
static unsigned long clock_ticks;
static const char *last_impl[2] = {"none", "none"};

// Scratch buffers reused across calls: 0 input, 1 weight, 2 output, 3 the primitive's scratchpad.
static void *scratch[4];
static size_t scratch_size[4];

static void *scratch_buffer(int i, size_t bytes) {
    if (bytes == 0) bytes = 64;
    if (scratch_size[i] < bytes) {
        free(scratch[i]);
        if (posix_memalign(&scratch[i], 64, bytes) != 0) { scratch[i] = NULL; scratch_size[i] = 0; return NULL; }
        scratch_size[i] = bytes;
    }
    return scratch[i];
}

static void destroy(entry *e) {
    if (e->conv) dnnl_primitive_destroy(e->conv);
    if (e->in_reorder) dnnl_primitive_destroy(e->in_reorder);
    if (e->weight_reorder) dnnl_primitive_destroy(e->weight_reorder);
    if (e->out_reorder) dnnl_primitive_destroy(e->out_reorder);
    memset(e, 0, sizeof *e);
}

static dnnl_status_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, dnnl_primitive_t *out) {
    *out = NULL;
    if (dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_desc_t pd;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL);
    if (s != dnnl_success) return s;
    s = dnnl_primitive_create(out, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

#define TRY(f) do { s = (f); if (s != dnnl_success) goto fail; } while (0)

static dnnl_status_t build(entry *e, int kind, const vconv_geometry *g) {
    dnnl_status_t s;
    dnnl_primitive_desc_t fwd = NULL, bwd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    memset(e, 0, sizeof *e);
    int grouped = g->groups > 1;
    dnnl_dims_t src_dims = {g->n, g->c, g->h, g->w}, dst_dims = {g->n, g->o, g->oh, g->ow};
    dnnl_dims_t wei_dims = {g->groups, g->o / g->groups, g->c / g->groups, g->kh, g->kw};
    if (!grouped) { wei_dims[0] = g->o; wei_dims[1] = g->c; wei_dims[2] = g->kh; wei_dims[3] = g->kw; }
    dnnl_dims_t strides = {g->sh, g->sw}, pad_l = {g->ph, g->pw};
    // Symmetric padding as PyTorch, with the bottom/right padding that gives oh, ow.
    dnnl_dims_t pad_r = {(g->oh - 1) * g->sh + g->kh - g->h - g->ph, (g->ow - 1) * g->sw + g->kw - g->w - g->pw};
    int wrank = grouped ? 5 : 4;
    dnnl_memory_desc_t src_any, dst_any, wei_any, src_plain, dst_plain, wei_plain;
    TRY(dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&wei_any, wrank, wei_dims, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&src_plain, 4, src_dims, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(&dst_plain, 4, dst_dims, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(&wei_plain, wrank, wei_dims, dnnl_f32, grouped ? dnnl_goihw : dnnl_oihw));
    TRY(dnnl_primitive_attr_create(&attr));
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_convolution_desc_t fd, bd;
    TRY(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src_any, &wei_any, NULL, &dst_any,
                                           strides, pad_l, pad_r));
    TRY(dnnl_primitive_desc_create(&fwd, &fd, attr, engine, NULL));
    const_dnnl_primitive_desc_t pd = fwd;
    if (kind == VCONV_BACKWARD_DATA) {
        TRY(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any, strides, pad_l, pad_r));
        TRY(dnnl_primitive_desc_create(&bwd, &bd, attr, engine, fwd));
        pd = bwd;
    }
    // Reference (gemm) implementations are no faster than our own kernels: only direct jit ones.
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (strncmp(impl, "jit", 3) != 0) { s = dnnl_unimplemented; goto fail; }
    strncpy(e->impl, impl, sizeof e->impl - 1);
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *imd = dnnl_primitive_desc_query_md(pd, kind == VCONV_FORWARD ? dnnl_query_src_md : dnnl_query_diff_dst_md, 0);
    const dnnl_memory_desc_t *omd = dnnl_primitive_desc_query_md(pd, kind == VCONV_FORWARD ? dnnl_query_dst_md : dnnl_query_diff_src_md, 0);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->in_md = *imd; e->weight_md = *wmd; e->out_md = *omd;
    e->in_plain = kind == VCONV_FORWARD ? src_plain : dst_plain;
    e->out_plain = kind == VCONV_FORWARD ? dst_plain : src_plain;
    e->weight_plain = wei_plain;
    e->in_bytes = dnnl_memory_desc_get_size(imd);
    e->weight_bytes = dnnl_memory_desc_get_size(wmd);
    e->out_bytes = dnnl_memory_desc_get_size(omd);
    e->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    TRY(dnnl_primitive_create(&e->conv, pd));
    TRY(make_reorder(&e->in_plain, &e->in_md, &e->in_reorder));
    TRY(make_reorder(&e->weight_plain, &e->weight_md, &e->weight_reorder));
    TRY(make_reorder(&e->out_md, &e->out_plain, &e->out_reorder));
    e->used = 1;
    e->kind = kind;
    e->g = *g;
    dnnl_primitive_desc_destroy(fwd);
    if (bwd) dnnl_primitive_desc_destroy(bwd);
    dnnl_primitive_attr_destroy(attr);
    return dnnl_success;
fail:
    if (fwd) dnnl_primitive_desc_destroy(fwd);
    if (bwd) dnnl_primitive_desc_destroy(bwd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    destroy(e);
    return s;
}

static entry *find(int kind, const vconv_geometry *g, dnnl_status_t *status) {
    entry *oldest = &cache[0];
    for (int i = 0; i < CACHE_SIZE; i++) {
        entry *e = &cache[i];
        if (e->used && e->kind == kind && memcmp(&e->g, g, sizeof *g) == 0) {
            *status = e->unsupported ? dnnl_unimplemented : dnnl_success;
            return e->unsupported ? NULL : e;
        }
        if (!e->used) oldest = e;
        else if (oldest->used && e->last_use < oldest->last_use) oldest = e;
    }
    if (oldest->used) destroy(oldest);
    *status = build(oldest, kind, g);
    if (*status == dnnl_unimplemented) {  // remember it
        oldest->used = 1; oldest->unsupported = 1; oldest->kind = kind; oldest->g = *g; oldest->last_use = ++clock_ticks;
    }
    return *status == dnnl_success ? oldest : NULL;
}

static dnnl_status_t wrap(const dnnl_memory_desc_t *md, void *data, dnnl_memory_t *m) {
    return dnnl_memory_create(m, md, engine, data);
}

static dnnl_status_t run_reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return dnnl_primitive_execute(r, stream, 2, args);
}

int vconv_run(int kind, const vconv_geometry *g, const float *in, const float *weight, float *out) {
    if (kind != VCONV_FORWARD && kind != VCONV_BACKWARD_DATA) return dnnl_invalid_arguments;
    if (g->groups < 1 || g->c % g->groups || g->o % g->groups) return dnnl_invalid_arguments;
    pthread_mutex_lock(&lock);
    dnnl_status_t s = dnnl_success;
    dnnl_memory_t m[8] = {0};
    if (!engine) {
        TRY(dnnl_engine_create(&engine, dnnl_cpu, 0));
        TRY(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    }
    entry *e = find(kind, g, &s);
    if (!e) goto fail;
    e->last_use = ++clock_ticks;
    void *ib = e->in_reorder ? scratch_buffer(0, e->in_bytes) : (void *)in;
    void *wb = e->weight_reorder ? scratch_buffer(1, e->weight_bytes) : (void *)weight;
    void *ob = e->out_reorder ? scratch_buffer(2, e->out_bytes) : (void *)out;
    void *sb = scratch_buffer(3, e->scratch_bytes);
    if (!ib || !wb || !ob || !sb) { s = dnnl_out_of_memory; goto fail; }
    // m: 0 plain in, 1 in, 2 plain weight, 3 weight, 4 out, 5 plain out, 6 scratchpad
    TRY(wrap(&e->in_plain, (void *)in, &m[0]));
    TRY(wrap(&e->in_md, ib, &m[1]));
    TRY(wrap(&e->weight_plain, (void *)weight, &m[2]));
    TRY(wrap(&e->weight_md, wb, &m[3]));
    TRY(wrap(&e->out_md, ob, &m[4]));
    TRY(wrap(&e->out_plain, out, &m[5]));
    const_dnnl_primitive_desc_t pd;
    TRY(dnnl_primitive_get_primitive_desc(e->conv, &pd));
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    int nargs = 3;
    if (smd && e->scratch_bytes > 0) { TRY(wrap(smd, sb, &m[6])); nargs = 4; }
    if (e->in_reorder) TRY(run_reorder(e->in_reorder, m[0], m[1]));
    if (e->weight_reorder) TRY(run_reorder(e->weight_reorder, m[2], m[3]));
    if (kind == VCONV_FORWARD) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, m[1]}, {DNNL_ARG_WEIGHTS, m[3]}, {DNNL_ARG_DST, m[4]}, {DNNL_ARG_SCRATCHPAD, m[6]}};
        TRY(dnnl_primitive_execute(e->conv, stream, nargs, args));
    } else {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_DIFF_DST, m[1]}, {DNNL_ARG_WEIGHTS, m[3]}, {DNNL_ARG_DIFF_SRC, m[4]}, {DNNL_ARG_SCRATCHPAD, m[6]}};
        TRY(dnnl_primitive_execute(e->conv, stream, nargs, args));
    }
    if (e->out_reorder) TRY(run_reorder(e->out_reorder, m[4], m[5]));
    TRY(dnnl_stream_wait(stream));
    last_impl[kind] = e->impl;
fail:
    for (int i = 0; i < 8; i++) if (m[i]) dnnl_memory_destroy(m[i]);
    pthread_mutex_unlock(&lock);
    return s == dnnl_success ? 0 : (int)s;
}

const char *vconv_last_implementation(int kind) {
    return (kind == 0 || kind == 1) ? last_impl[kind] : "none";
}

void vconv_reset(void) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < CACHE_SIZE; i++) if (cache[i].used) destroy(&cache[i]);
    for (int i = 0; i < 4; i++) { free(scratch[i]); scratch[i] = NULL; scratch_size[i] = 0; }
    pthread_mutex_unlock(&lock);
}
