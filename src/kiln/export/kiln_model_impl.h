/*
 * The model-independent half of an exported library's kiln_model.h entry points: errors,
 * size arithmetic that never wraps, opening (embedded or external weights) and closing.
 * Included once by the generated kiln_model.c, which defines before it:
 *   KILN_WEIGHTS_EXTERNAL (or not), and for external weights W_HEADER, W_DATA, W_SUM.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t kiln_run(void **P, const int64_t *S, double *T, int64_t nP, int64_t nS);

static _Thread_local char kiln__err[768];

static int kiln__fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kiln__err, sizeof kiln__err, fmt, ap);
    va_end(ap);
    return code;
}

const char *kiln_model_last_error(void) { return kiln__err; }

static int64_t kiln__fdiv(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* saturating: a size computed from hostile dims never wraps around to a small one */
static int64_t kiln__mul(int64_t a, int64_t b)
{
    int64_t r;
    return (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) ? INT64_MAX : r;
}

static int64_t kiln__add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

struct kiln_model {
    const unsigned char *weights; /* the data of every constant */
    void *owned;                  /* what close frees (external weights read by open) */
};

static int kiln__new(kiln_model **model, const unsigned char *weights, void *owned)
{
    kiln_model *m = malloc(sizeof *m);
    if (!m) {
        free(owned);
        return kiln__fail(KILN_E_MEMORY, "open: out of memory");
    }
    m->weights = weights;
    m->owned = owned;
    *model = m;
    return KILN_OK;
}

void kiln_model_close(kiln_model *m)
{
    if (!m) return;
    free(m->owned);
    free(m);
}

#ifndef KILN_WEIGHTS_EXTERNAL

extern const unsigned char kiln__weights[];

int kiln_model_open(const char *weights_path, kiln_model **model)
{
    if (!model) return kiln__fail(KILN_E_ARGUMENT, "open: model is NULL");
    *model = NULL;
    if (weights_path)
        return kiln__fail(KILN_E_WEIGHTS, "open: this library embeds its weights; pass NULL, "
                          "not %s", weights_path);
    return kiln__new(model, kiln__weights, NULL);
}

int kiln_model_open_memory(const void *weights, int64_t nbytes, kiln_model **model)
{
    (void)weights;
    (void)nbytes;
    if (model) *model = NULL;
    return kiln__fail(KILN_E_WEIGHTS, "open_memory: this library embeds its weights; call "
                      "kiln_model_open(NULL, ...)");
}

#else

static uint64_t kiln__sum64(const unsigned char *p, int64_t n)
{
    uint64_t h = 0, w;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h += w * (uint64_t)(i / 8 + 1);
    }
    if (i < n) {
        w = 0;
        memcpy(&w, p + i, (size_t)(n - i));
        h += w * (uint64_t)(i / 8 + 1);
    }
    return h;
}

/* the whole .safetensors file: its header length, total size and data checksum */
static int kiln__check(const unsigned char *p, int64_t n)
{
    int64_t h = 0;
    if (n < 8)
        return kiln__fail(KILN_E_WEIGHTS, "weights: %lld bytes, not a safetensors file",
                          (long long)n);
    for (int k = 7; k >= 0; k--) h = (h << 8) | p[k];
    if (h != W_HEADER || n != 8 + W_HEADER + W_DATA)
        return kiln__fail(KILN_E_WEIGHTS, "weights: expected %lld bytes with a %lld-byte "
                          "header, got %lld bytes", (long long)(8 + W_HEADER + W_DATA),
                          (long long)W_HEADER, (long long)n);
    if (kiln__sum64(p + 8 + W_HEADER, W_DATA) != W_SUM)
        return kiln__fail(KILN_E_WEIGHTS, "weights: the data's checksum differs from the one "
                          "this library was built with");
    return KILN_OK;
}

int kiln_model_open_memory(const void *weights, int64_t nbytes, kiln_model **model)
{
    if (!model || !weights) return kiln__fail(KILN_E_ARGUMENT, "open_memory: NULL argument");
    *model = NULL;
    int rc = kiln__check(weights, nbytes);
    if (rc) return rc;
    return kiln__new(model, (const unsigned char *)weights + 8 + W_HEADER, NULL);
}

int kiln_model_open(const char *weights_path, kiln_model **model)
{
    char path[4096];
    if (!model) return kiln__fail(KILN_E_ARGUMENT, "open: model is NULL");
    *model = NULL;
    if (!weights_path) { /* the .safetensors beside this library */
        Dl_info info;
        if (!dladdr((void *)kiln_model_open, &info) || !info.dli_fname)
            return kiln__fail(KILN_E_WEIGHTS, "open: cannot find this library's path; pass "
                              "the weights path");
        size_t n = strlen(info.dli_fname);
        if (n < 3 || n + 16 > sizeof path || strcmp(info.dli_fname + n - 3, ".so"))
            return kiln__fail(KILN_E_WEIGHTS, "open: library path %s does not end in .so; "
                              "pass the weights path", info.dli_fname);
        memcpy(path, info.dli_fname, n - 3);
        strcpy(path + n - 3, ".safetensors");
        weights_path = path;
    }
    FILE *f = fopen(weights_path, "rb");
    if (!f) return kiln__fail(KILN_E_WEIGHTS, "open: cannot read weights %s", weights_path);
    int64_t n = 8 + W_HEADER + W_DATA;
    unsigned char *buf = aligned_alloc(64, (size_t)((n + 63) / 64 * 64));
    if (!buf) {
        fclose(f);
        return kiln__fail(KILN_E_MEMORY, "open: out of memory");
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    int rc = kiln__check(buf, extra ? n + 1 : (int64_t)got);
    if (rc) {
        free(buf);
        return rc;
    }
    return kiln__new(model, buf + 8 + W_HEADER, buf);
}

#endif
