/*
 * run_model: run a library written by kiln.aot_compile, with no Python.
 *
 *   cc -O2 -I<kiln>/src/kiln/export -o run_model run_model.c -ldl -lpthread
 *   ./run_model model.so [-w weights.safetensors] [-t THREADS] [-r REPEAT] \
 *       DIMS:FILE ... -- OUT_FILE ...
 *
 * Each input is DIMS:FILE: the dims joined by 'x' (7x784; "" for a scalar) and a file of
 * raw C-contiguous data in the input's dtype (as numpy's tofile writes it). Each output
 * file receives its output's raw data; the outputs' shapes are printed, one per line.
 * -t runs the model from THREADS threads at once (each with its own outputs; all must
 * agree); -r repeats the run and prints the mean microseconds per call.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln_model.h"

typedef int (*open_fn)(const char *, kiln_model **);
typedef void (*close_fn)(kiln_model *);
typedef int (*count_fn)(const kiln_model *);
typedef int (*info_fn)(const kiln_model *, int, kiln_tensor_info *);
typedef int (*dims_fn)(const kiln_model *, const int64_t *, int64_t *);
typedef int (*run_fn)(const kiln_model *, const void *const *, const int64_t *,
                      const int64_t *, void *const *, const int64_t *);
typedef const char *(*error_fn)(void);

static const int64_t ITEMSIZE[] = {1, 4, 8, 4, 8}; /* by kiln_dtype */

static struct {
    kiln_model *model;
    run_fn run;
    error_fn error;
    int n_in, n_out, repeat;
    const void **inputs;
    int64_t *in_dims, *in_bytes, *out_bytes;
} G;

typedef struct {
    void **outputs;
    int rc;
    char message[512];
} job;

static void *worker(void *arg)
{
    job *j = arg;
    for (int r = 0; r < G.repeat && !j->rc; r++)
        j->rc = G.run(G.model, G.inputs, G.in_dims, G.in_bytes, j->outputs, G.out_bytes);
    if (j->rc) snprintf(j->message, sizeof j->message, "%s", G.error());
    return NULL;
}

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "run_model: %s is not in the library\n", name);
        exit(2);
    }
    return p;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *weights = NULL;
    int threads = 1, a = 2;
    G.repeat = 1;
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIB.so [-w WEIGHTS] [-t THREADS] [-r REPEAT] DIMS:FILE... "
                "-- OUT_FILE...\n", argv[0]);
        return 2;
    }
    for (; a < argc; a++) {
        if (!strcmp(argv[a], "-w") && a + 1 < argc) weights = argv[++a];
        else if (!strcmp(argv[a], "-t") && a + 1 < argc) threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "-r") && a + 1 < argc) G.repeat = atoi(argv[++a]);
        else break;
    }
    if (threads < 1 || G.repeat < 1) return 2;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "run_model: %s\n", dlerror());
        return 2;
    }
    open_fn open_ = (open_fn)sym(lib, "kiln_model_open");
    close_fn close_ = (close_fn)sym(lib, "kiln_model_close");
    count_fn n_in = (count_fn)sym(lib, "kiln_model_num_inputs");
    count_fn n_out = (count_fn)sym(lib, "kiln_model_num_outputs");
    info_fn in_info = (info_fn)sym(lib, "kiln_model_input_info");
    info_fn out_info = (info_fn)sym(lib, "kiln_model_output_info");
    dims_fn out_dims = (dims_fn)sym(lib, "kiln_model_output_dims");
    G.run = (run_fn)sym(lib, "kiln_model_run");
    G.error = (error_fn)sym(lib, "kiln_model_last_error");

    int rc = open_(weights, &G.model);
    if (rc) {
        fprintf(stderr, "run_model: open failed (%d): %s\n", rc, G.error());
        return 3;
    }
    G.n_in = n_in(G.model);
    G.n_out = n_out(G.model);
    G.inputs = calloc(G.n_in + 1, sizeof *G.inputs);
    G.in_bytes = calloc(G.n_in + 1, sizeof *G.in_bytes);
    G.in_dims = calloc(64 * (G.n_in + 1), sizeof *G.in_dims);
    int64_t pos = 0;
    for (int i = 0; i < G.n_in; i++, a++) {
        kiln_tensor_info info;
        in_info(G.model, i, &info);
        if (a >= argc || !strcmp(argv[a], "--")) {
            fprintf(stderr, "run_model: input %d (%s) is missing\n", i, info.name);
            return 2;
        }
        char *spec = argv[a], *colon = strchr(spec, ':');
        if (!colon) {
            fprintf(stderr, "run_model: expected DIMS:FILE, got %s\n", spec);
            return 2;
        }
        int rank = 0;
        for (char *p = spec; p < colon && rank < 64; rank++) {
            G.in_dims[pos + rank] = strtoll(p, &p, 10);
            if (*p == 'x') p++;
        }
        if (rank != info.rank) {
            fprintf(stderr, "run_model: input %s has rank %d, got %d dims\n", info.name,
                    info.rank, rank);
            return 2;
        }
        FILE *f = fopen(colon + 1, "rb");
        if (!f) {
            fprintf(stderr, "run_model: cannot read %s\n", colon + 1);
            return 2;
        }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        void *data = malloc(size ? size : 1);
        if (fread(data, 1, size, f) != (size_t)size) return 2;
        fclose(f);
        G.inputs[i] = data;
        G.in_bytes[i] = size; /* the library checks it against the dims */
        pos += rank;
    }
    if (a < argc && !strcmp(argv[a], "--")) a++;
    if (argc - a != G.n_out) {
        fprintf(stderr, "run_model: expected %d output files, got %d\n", G.n_out, argc - a);
        return 2;
    }
    int64_t odims[1024];
    rc = out_dims(G.model, G.in_dims, odims);
    if (rc) {
        fprintf(stderr, "run_model: error %d: %s\n", rc, G.error());
        return 4;
    }
    G.out_bytes = calloc(G.n_out + 1, sizeof *G.out_bytes);
    pos = 0;
    for (int j = 0; j < G.n_out; j++) {
        kiln_tensor_info info;
        out_info(G.model, j, &info);
        int64_t n = ITEMSIZE[info.dtype];
        for (int k = 0; k < info.rank; k++) {
            printf("%s%lld", k ? "x" : "", (long long)odims[pos + k]);
            n *= odims[pos + k];
        }
        printf("\n");
        G.out_bytes[j] = n;
        pos += info.rank;
    }
    job *jobs = calloc(threads, sizeof *jobs);
    pthread_t *tids = calloc(threads, sizeof *tids);
    for (int t = 0; t < threads; t++) {
        jobs[t].outputs = calloc(G.n_out + 1, sizeof(void *));
        for (int j = 0; j < G.n_out; j++) jobs[t].outputs[j] = malloc(G.out_bytes[j] + 1);
    }
    double t0 = now();
    for (int t = 0; t < threads; t++) pthread_create(&tids[t], NULL, worker, &jobs[t]);
    for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    double t1 = now();
    for (int t = 0; t < threads; t++) {
        if (jobs[t].rc) {
            fprintf(stderr, "run_model: error %d: %s\n", jobs[t].rc, jobs[t].message);
            return 4;
        }
        for (int j = 0; j < G.n_out; j++)
            if (memcmp(jobs[t].outputs[j], jobs[0].outputs[j], G.out_bytes[j])) {
                fprintf(stderr, "run_model: thread %d computed another output %d\n", t, j);
                return 5;
            }
    }
    if (G.repeat > 1)
        fprintf(stderr, "run_model: %.3f us per call\n", (t1 - t0) * 1e6 / G.repeat);
    for (int j = 0; j < G.n_out; j++, a++) {
        FILE *f = fopen(argv[a], "wb");
        if (!f || fwrite(jobs[0].outputs[j], 1, G.out_bytes[j], f) != (size_t)G.out_bytes[j]) {
            fprintf(stderr, "run_model: cannot write %s\n", argv[a]);
            return 2;
        }
        fclose(f);
    }
    close_(G.model);
    return 0;
}
