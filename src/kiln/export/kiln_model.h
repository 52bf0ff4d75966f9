/*
 * kiln_model.h -- the C API of a shared library written by kiln.aot_compile.
 *
 * One library holds one model: its code, its weights (embedded in a read-only, 64-byte
 * aligned data section, or in a .safetensors file beside the library) and a manifest (JSON).
 * It needs only libc, libm and, when built with OpenMP, libgomp.
 *
 *   kiln_model *m;
 *   if (kiln_model_open(NULL, &m) != KILN_OK) { puts(kiln_model_last_error()); ... }
 *   int64_t in_dims[] = {7, 784};                 // every input's dims, concatenated
 *   int64_t in_bytes[] = {7 * 784 * 4};            // each input buffer's size in bytes
 *   int64_t out_dims[2];                           // every output's dims, concatenated
 *   kiln_model_output_dims(m, in_dims, out_dims);  // {7, 10}
 *   int64_t out_bytes[] = {sizeof out};            // capacity of each output buffer
 *   kiln_model_run(m, (const void *[]){x}, in_dims, in_bytes, (void *[]){out}, out_bytes);
 *   kiln_model_close(m);
 *
 * Inputs and outputs are the model's flat tensor leaves (the order kiln's pytree flattening
 * gives), C-contiguous, in the dtypes the info calls report. Output buffers must not
 * overlap inputs or each other.
 *
 * Every call checks its arguments before any kernel runs: ranks and static sizes, dynamic
 * sizes against their ranges and against each other, what the traced program assumed about
 * them, and the byte size of every input (must equal the shape's) and output buffer (must
 * hold it). A failed check returns an error code and writes nothing.
 *
 * Threads: after kiln_model_open returns, a model is immutable; kiln_model_run may be called
 * on one model from several threads at once (each call takes its own scratch memory).
 * kiln_model_last_error is per thread.
 */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_MODEL_ABI_VERSION 1

typedef enum {
    KILN_OK = 0,
    KILN_E_ARGUMENT = 1, /* a NULL pointer, an index out of range */
    KILN_E_SHAPE = 2,    /* a wrong rank or static size; one dynamic dim with two sizes */
    KILN_E_RANGE = 3,    /* a dynamic size outside its range, or an assumption it breaks */
    KILN_E_SIZE = 4,     /* an input buffer's bytes differ from its shape's; an output's are too few */
    KILN_E_MEMORY = 5,   /* out of memory */
    KILN_E_WEIGHTS = 6,  /* external weights missing, unreadable or of the wrong size or kind */
    KILN_E_KERNEL = 7    /* a kernel's own check failed (an index out of range in the data) */
} kiln_status;

typedef enum {
    KILN_BOOL = 0,   /* one byte, 0 or 1 */
    KILN_INT32 = 1,
    KILN_INT64 = 2,
    KILN_FLOAT32 = 3,
    KILN_FLOAT64 = 4
} kiln_dtype;

typedef struct {
    const char *name;          /* input: the graph input's name; output: "output_<i>" */
    int32_t dtype;             /* a kiln_dtype */
    int32_t rank;
    const int64_t *dims;       /* rank entries; -1 for a dynamic dim */
    const int64_t *dim_min;    /* rank entries: the smallest size of each dim */
    const int64_t *dim_max;    /* rank entries: the largest size of each dim */
    const char *const *dim_names; /* rank entries: the dim's symbol or expression, NULL if static */
} kiln_tensor_info;

typedef struct kiln_model kiln_model;

/* Open the model. weights_path: NULL for a library with embedded weights, or for external
 * weights the .safetensors file (NULL: the file beside the library, same name). */
int kiln_model_open(const char *weights_path, kiln_model **model);
/* Open a library with external weights from memory the caller keeps alive until close. */
int kiln_model_open_memory(const void *weights, int64_t nbytes, kiln_model **model);
void kiln_model_close(kiln_model *model);

int kiln_model_num_inputs(const kiln_model *model);
int kiln_model_num_outputs(const kiln_model *model);
int kiln_model_input_info(const kiln_model *model, int index, kiln_tensor_info *info);
int kiln_model_output_info(const kiln_model *model, int index, kiln_tensor_info *info);

/* The outputs' dims (concatenated) for inputs of these dims (concatenated); checks them. */
int kiln_model_output_dims(const kiln_model *model, const int64_t *input_dims,
                           int64_t *output_dims);

/* Run on caller-owned buffers (see the top of this file). */
int kiln_model_run(const kiln_model *model, const void *const *inputs,
                   const int64_t *input_dims, const int64_t *input_bytes,
                   void *const *outputs, const int64_t *output_bytes);

/* The message of this thread's last failed call ("" if none). */
const char *kiln_model_last_error(void);
/* The manifest (JSON, NUL-terminated); *size gets its length when size is not NULL. */
const char *kiln_model_manifest(size_t *size);

#ifdef __cplusplus
}
#endif
#endif /* KILN_MODEL_H */
