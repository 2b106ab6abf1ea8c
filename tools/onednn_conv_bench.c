// Evaluation of oneDNN (Debian libdnnl-dev 2.6) for our convolutions: GFLOP/s of forward,
// backward-data and backward-weights at ResNet-50 and StyleGAN2 shapes, with the layouts the
// library prefers (format_tag_any, blocked), with plain NCHW tensors (what our op interface
// holds), and the cost of the reorders between the two. Not part of the build or the tests.
//
// build: cc -O2 tools/onednn_conv_bench.c -o /tmp/onednn_conv_bench -ldnnl
// run:   OMP_NUM_THREADS=2 /tmp/onednn_conv_bench [batch]
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHECK(f) do { dnnl_status_t s_ = (f); if (s_ != dnnl_success) { fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #f, s_); exit(1); } } while (0)

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static dnnl_memory_t alloc(const dnnl_memory_desc_t *md) {
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE));
    void *p; CHECK(dnnl_memory_get_data_handle(m, &p));
    size_t n = dnnl_memory_desc_get_size(md) / 4;
    for (size_t i = 0; i < n; i++) ((float *)p)[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return m;
}

// Median seconds of 5 runs after one warm-up.
static double timed(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args) {
    double t[5];
    CHECK(dnnl_primitive_execute(p, stream, nargs, args)); CHECK(dnnl_stream_wait(stream));
    for (int i = 0; i < 5; i++) {
        double s = now();
        CHECK(dnnl_primitive_execute(p, stream, nargs, args)); CHECK(dnnl_stream_wait(stream));
        t[i] = now() - s;
    }
    for (int i = 0; i < 5; i++) for (int j = i + 1; j < 5; j++) if (t[j] < t[i]) { double x = t[i]; t[i] = t[j]; t[j] = x; }
    return t[2];
}

static const char *impl(const_dnnl_primitive_desc_t pd) {
    const char *s = "?"; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s); return s;
}

static double reorder_time(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to) {
    if (dnnl_memory_desc_equal(from, to)) return 0;
    dnnl_primitive_desc_t pd; dnnl_primitive_t p;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL));
    CHECK(dnnl_primitive_create(&p, pd));
    dnnl_memory_t a = alloc(from), b = alloc(to);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    double t = timed(p, 2, args);
    dnnl_primitive_destroy(p); dnnl_primitive_desc_destroy(pd); dnnl_memory_destroy(a); dnnl_memory_destroy(b);
    return t;
}

// One shape in one layout mode: any = 1 lets the library choose (blocked), 0 forces NCHW/OIHW.
static void bench(const char *name, int n, int ci, int co, int k, int stride, int pad, int size, int any) {
    int out = (size + 2 * pad - k) / stride + 1;
    dnnl_dims_t sd = {n, ci, size, size}, wd = {co, ci, k, k}, dd = {n, co, out, out};
    dnnl_dims_t st = {stride, stride}, pl = {pad, pad};
    dnnl_memory_desc_t src, wei, dst, srcPlain, weiPlain, dstPlain;
    dnnl_format_tag_t act = any ? dnnl_format_tag_any : dnnl_nchw, wt = any ? dnnl_format_tag_any : dnnl_oihw;
    CHECK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, act));
    CHECK(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, wt));
    CHECK(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, act));
    CHECK(dnnl_memory_desc_init_by_tag(&srcPlain, 4, sd, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&weiPlain, 4, wd, dnnl_f32, dnnl_oihw));
    CHECK(dnnl_memory_desc_init_by_tag(&dstPlain, 4, dd, dnnl_f32, dnnl_nchw));
    double flops = 2.0 * n * co * out * out * ci * k * k;

    dnnl_convolution_desc_t fd, bdd, bwd;
    CHECK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src, &wei, NULL, &dst, st, pl, pl));
    dnnl_primitive_desc_t fpd; CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, engine, NULL));
    CHECK(dnnl_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &src, &wei, &dst, st, pl, pl));
    dnnl_primitive_desc_t bdpd; CHECK(dnnl_primitive_desc_create(&bdpd, &bdd, NULL, engine, fpd));
    CHECK(dnnl_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &src, &wei, NULL, &dst, st, pl, pl));
    dnnl_primitive_desc_t bwpd; CHECK(dnnl_primitive_desc_create(&bwpd, &bwd, NULL, engine, fpd));

    const dnnl_memory_desc_t *s = dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *d = dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    dnnl_memory_t ms = alloc(s), mw = alloc(w), md = alloc(d);
    dnnl_memory_t mds = alloc(dnnl_primitive_desc_query_md(bdpd, dnnl_query_diff_src_md, 0));
    dnnl_memory_t mdw = alloc(dnnl_primitive_desc_query_md(bwpd, dnnl_query_diff_weights_md, 0));
    dnnl_memory_t mdd = alloc(dnnl_primitive_desc_query_md(bwpd, dnnl_query_diff_dst_md, 0));
    dnnl_memory_t mbs = alloc(dnnl_primitive_desc_query_md(bwpd, dnnl_query_src_md, 0));
    dnnl_memory_t mbdd = alloc(dnnl_primitive_desc_query_md(bdpd, dnnl_query_diff_dst_md, 0));
    dnnl_memory_t mbw = alloc(dnnl_primitive_desc_query_md(bdpd, dnnl_query_weights_md, 0));

    dnnl_primitive_t fp, bdp, bwp;
    CHECK(dnnl_primitive_create(&fp, fpd)); CHECK(dnnl_primitive_create(&bdp, bdpd)); CHECK(dnnl_primitive_create(&bwp, bwpd));
    dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    dnnl_exec_arg_t ba[] = {{DNNL_ARG_DIFF_DST, mbdd}, {DNNL_ARG_WEIGHTS, mbw}, {DNNL_ARG_DIFF_SRC, mds}};
    dnnl_exec_arg_t wa[] = {{DNNL_ARG_SRC, mbs}, {DNNL_ARG_DIFF_DST, mdd}, {DNNL_ARG_DIFF_WEIGHTS, mdw}};
    double tf = timed(fp, 3, fa), tb = timed(bdp, 3, ba), tw = timed(bwp, 3, wa);
    // Reorders a per-op NCHW interface would add: src and dst of the forward pass, weights.
    double tr = any ? reorder_time(&srcPlain, s) + reorder_time(d, &dstPlain) + reorder_time(&weiPlain, w) : 0;
    printf("%-34s %-8s fwd %6.1f  bwd-data %6.1f  bwd-weights %6.1f GFLOP/s   fwd+reorders %6.1f   [%s | %s | %s]\n",
           name, any ? "blocked" : "nchw", flops / tf / 1e9, flops / tb / 1e9, flops / tw / 1e9,
           any ? flops / (tf + tr) / 1e9 : flops / tf / 1e9, impl(fpd), impl(bdpd), impl(bwpd));
    dnnl_primitive_destroy(fp); dnnl_primitive_destroy(bdp); dnnl_primitive_destroy(bwp);
    dnnl_primitive_desc_destroy(fpd); dnnl_primitive_desc_destroy(bdpd); dnnl_primitive_desc_destroy(bwpd);
    dnnl_memory_t all[] = {ms, mw, md, mds, mdw, mdd, mbs, mbdd, mbw};
    for (int i = 0; i < 9; i++) dnnl_memory_destroy(all[i]);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    struct { const char *name; int ci, co, k, s, p, size; } shapes[] = {
        {"resnet224 stem 7x7/2 3->64", 3, 64, 7, 2, 3, 224},
        {"resnet224 layer1 1x1 256->64", 256, 64, 1, 1, 0, 56},
        {"resnet224 layer1 3x3 64->64", 64, 64, 3, 1, 1, 56},
        {"resnet224 layer2 3x3 128->128", 128, 128, 3, 1, 1, 28},
        {"resnet224 layer3 3x3 256->256", 256, 256, 3, 1, 1, 14},
        {"resnet224 layer4 3x3 512->512", 512, 512, 3, 1, 1, 7},
        {"resnet224 layer4 1x1 2048->512", 2048, 512, 1, 1, 0, 7},
        {"stylegan 3x3 512->512 at 32", 512, 512, 3, 1, 1, 32},
        {"stylegan 3x3 128->128 at 128", 128, 128, 3, 1, 1, 128},
        {"stylegan 3x3 64->64 at 256", 64, 64, 3, 1, 1, 256},
    };
    printf("oneDNN %d.%d.%d, batch %d\n", dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch, n);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int any = 1; any >= 0; any--)
            bench(shapes[i].name, n, shapes[i].ci, shapes[i].co, shapes[i].k, shapes[i].s, shapes[i].p, shapes[i].size, any);
    return 0;
}
