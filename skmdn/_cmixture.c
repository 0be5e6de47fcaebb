/* skmdn._cmixture: the mixture loss's forward and backward pass in one
   compiled call that releases the GIL (optional; see _fused.py): diag_nll
   for the diagonal noise types, full_nll for noise_type='full'; and
   gather_rows, a training block's rows of the packed data, transposed;
   adam, an optimiser step in one pass; pack_columns, the standardised
   columns of the packed training data in one pass.

   One call replaces dozens of small torch kernels, each holding the GIL for
   its dispatch. The loops run over a tile of T rows at a time, the batch
   last, so that they vectorise; on x86-64 with glibc >= 2.35 (SKMDN_MVEC,
   set by setup.py) exp, log and log1p are glibc's vector functions
   (libmvec, at most 4 ulp) and the code is cloned for AVX2 + FMA, chosen
   when the module loads. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)(address))
#endif

#if defined(SKMDN_MVEC) && defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
float log1pf(float);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
double log1p(double);
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#if defined(_OPENMP) || defined(SKMDN_MVEC)
#define SIMD _Pragma("omp simd")
#define SIMD_SUM_PART _Pragma("omp simd reduction(+ : part)")
#else
#define SIMD
#define SIMD_SUM_PART
#endif

#define KIND_FIXED 0
#define KIND_SHARED 1 /* noise_type='isotropic_across' */
#define KIND_ISOTROPIC 2
#define KIND_DIAGONAL 3
#define DROP_BELOW (-60.0)
#define LOG_2PI 1.8378770664093453

static int scale_rows(int kind, int K, int d)
{
    return kind == KIND_DIAGONAL ? K * d
         : kind == KIND_ISOTROPIC ? K
         : kind == KIND_SHARED ? 1
         : d;
}

static int raw_rows(int kind, int K, int d)
{
    return kind == KIND_FIXED ? 0 : scale_rows(kind, K, d);
}

#define REAL float
#define FN(name) name##_f32
#define EXP expf
#define LOG logf
#define LOG1P log1pf
#define SQRT sqrtf

#include "_cmixture_kernel.h"
#undef REAL
#undef FN
#undef EXP
#undef LOG
#undef LOG1P
#undef SQRT

#define REAL double
#define FN(name) name##_f64
#define EXP exp
#define LOG log
#define LOG1P log1p
#define SQRT sqrt

#include "_cmixture_kernel.h"

/* Rows per tile: the tile's scratch arrays in at most 64 KiB (below
   malloc's mmap threshold, so no page faults per call). */
static Py_ssize_t tile_rows(Py_ssize_t per_row, size_t size)
{
    Py_ssize_t T = (Py_ssize_t)(65536 / (per_row * (Py_ssize_t)size)) / 8 * 8;
    return T < 8 ? 8 : T > 512 ? 512 : T;
}

/* The scratch of per_row values per row for a tile of *T rows (see
   tile_rows); NULL with MemoryError set when malloc fails. */
static void *tile_scratch(Py_ssize_t per_row, int f64, Py_ssize_t *T)
{
    const size_t size = f64 ? sizeof(double) : sizeof(float);
    *T = tile_rows(per_row, size);
    void *work = malloc((size_t)(per_row * *T) * size);
    if (work == NULL)
        PyErr_NoMemory();
    return work;
}

PyDoc_STRVAR(diag_nll_doc,
"diag_nll(out, y, w, grad, n, K, d, kind, fixed, min_scale, constant_weight, f64)\n"
"--\n\n"
"The loss (a float) and, written to grad, its gradient; the first four\n"
"and fixed are data addresses (see skmdn._fused.diagonal_nll, which\n"
"checks them).");

static PyObject *diag_nll(PyObject *self, PyObject *args)
{
    unsigned long long out, y, w, grad, fixed;
    Py_ssize_t n;
    int K, d, kind, f64;
    double min_scale, constant_weight;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKKKniiiKddp", &out, &y, &w, &grad, &n, &K,
                          &d, &kind, &fixed, &min_scale, &constant_weight, &f64))
        return NULL;
    if (n < 0 || K < 1 || d < 1 || kind < KIND_FIXED || kind > KIND_DIAGONAL) {
        PyErr_SetString(PyExc_ValueError, "diag_nll: bad sizes or kind");
        return NULL;
    }
    const int n_raw = raw_rows(kind, K, d), n_s = scale_rows(kind, K, d);
    const Py_ssize_t per_row = 2 * K + (Py_ssize_t)K * d + 2 * n_s + 2 * n_raw + 3;
    Py_ssize_t T;
    void *work = tile_scratch(per_row, f64, &T);
    if (work == NULL)
        return NULL;
    double loss;
    Py_BEGIN_ALLOW_THREADS
    if (f64)
        loss = diag_nll_f64((const double *)out, (const double *)y,
                            (const double *)w, (double *)grad, n, K, d, kind,
                            (const double *)fixed, min_scale, constant_weight,
                            (double *)work, T);
    else
        loss = diag_nll_f32((const float *)out, (const float *)y,
                            (const float *)w, (float *)grad, n, K, d, kind,
                            (const double *)fixed, min_scale, constant_weight,
                            (float *)work, T);
    Py_END_ALLOW_THREADS
    free(work);
    return PyFloat_FromDouble(loss);
}

PyDoc_STRVAR(full_nll_doc,
"full_nll(out, y, w, grad, n, K, d, min_scale, constant_weight, f64)\n"
"--\n\n"
"diag_nll for noise_type='full' (see skmdn._fused.full_nll).");

static PyObject *full_nll(PyObject *self, PyObject *args)
{
    unsigned long long out, y, w, grad;
    Py_ssize_t n;
    int K, d, f64;
    double min_scale, constant_weight;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKKKniiddp", &out, &y, &w, &grad, &n, &K, &d,
                          &min_scale, &constant_weight, &f64))
        return NULL;
    if (n < 0 || K < 1 || d < 1) {
        PyErr_SetString(PyExc_ValueError, "full_nll: bad sizes");
        return NULL;
    }
    const Py_ssize_t per_row = 2 * K + 3 * (Py_ssize_t)K * d + d + 3;
    Py_ssize_t T;
    void *work = tile_scratch(per_row, f64, &T);
    if (work == NULL)
        return NULL;
    double loss;
    Py_BEGIN_ALLOW_THREADS
    if (f64)
        loss = full_nll_f64((const double *)out, (const double *)y,
                            (const double *)w, (double *)grad, n, K, d,
                            min_scale, constant_weight, (double *)work, T);
    else
        loss = full_nll_f32((const float *)out, (const float *)y,
                            (const float *)w, (float *)grad, n, K, d,
                            min_scale, constant_weight, (float *)work, T);
    Py_END_ALLOW_THREADS
    free(work);
    return PyFloat_FromDouble(loss);
}

PyDoc_STRVAR(gather_rows_doc,
"gather_rows(packed, C, N, idx, start, n, F, xT, rest, f64)\n"
"--\n\n"
"Rows idx[0:n] (or start:start + n when idx is 0) of packed (N, C),\n"
"transposed: their first F columns to xT (F, n), the others to rest; the\n"
"arguments are data addresses and sizes (see skmdn._fused.gather_rows,\n"
"which checks them). IndexError for a row outside [0, N).");

static PyObject *gather_rows(PyObject *self, PyObject *args)
{
    unsigned long long packed, idx, xT, rest;
    Py_ssize_t C, N, start, n, F;
    int f64;
    Py_ssize_t bad;
    (void)self;
    if (!PyArg_ParseTuple(args, "KnnKnnnKKp", &packed, &C, &N, &idx, &start, &n,
                          &F, &xT, &rest, &f64))
        return NULL;
    if (C < 1 || N < 0 || n < 0 || F < 0 || F > C || start < 0) {
        PyErr_SetString(PyExc_ValueError, "gather_rows: bad sizes");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (f64)
        bad = gather_rows_f64((const double *)packed, C, N, (const int64_t *)idx,
                              start, n, F, (double *)xT, (double *)rest);
    else
        bad = gather_rows_f32((const float *)packed, C, N, (const int64_t *)idx,
                              start, n, F, (float *)xT, (float *)rest);
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_IndexError,
                     "gather_rows: row %zd of the block is outside the %zd rows "
                     "of the data", bad, N);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(adam_doc,
"adam(flat, grad, decay, m, v, n, beta1, beta2, bias2, step_size, eps, f64)\n"
"--\n\n"
"One Adam update of the n parameters at flat (see skmdn._fused.adam_step,\n"
"which checks the addresses).");

static PyObject *adam(PyObject *self, PyObject *args)
{
    unsigned long long flat, grad, decay, m, v;
    Py_ssize_t n;
    double beta1, beta2, bias2, step_size, eps;
    int f64;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKKKKndddddp", &flat, &grad, &decay, &m, &v, &n,
                          &beta1, &beta2, &bias2, &step_size, &eps, &f64))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "adam: bad size");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (f64)
        adam_f64((double *)flat, (const double *)grad, (const double *)decay,
                 (double *)m, (double *)v, n, beta1, beta2, bias2, step_size, eps);
    else
        adam_f32((float *)flat, (const float *)grad, (const float *)decay,
                 (float *)m, (float *)v, n, beta1, beta2, bias2, step_size, eps);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* out[i, j] = (DST)(((double)src[r, j] - mean[j]) / scale[j]) for the rows
   r = idx[i] (or i when idx is NULL), strides in elements; -1, or the
   first i whose row is outside [0, N). */
#define PACK_LOOP(SRC, DST)                                                   \
    for (Py_ssize_t i = 0; i < n; i++) {                                      \
        const int64_t r = idx != NULL ? idx[i] : (int64_t)i;                   \
        if (r < 0 || r >= N) {                                                \
            bad = i;                                                          \
            break;                                                            \
        }                                                                     \
        const SRC *row = (const SRC *)src + r * rs;                           \
        DST *o = (DST *)out + i * os;                                         \
        for (Py_ssize_t j = 0; j < width; j++)                                \
            o[j] = (DST)(((double)row[j * cs] - mean[j]) / scale[j]);         \
    }

PyDoc_STRVAR(pack_columns_doc,
"pack_columns(src, N, width, rs, cs, src_f64, idx, n, mean, scale, out, os, out_f64)\n"
"--\n\n"
"Standardised columns of the rows idx[0:n] (all N rows when idx is 0) of a\n"
"float32 or float64 array src (strides rs, cs in elements) written to the\n"
"rows of out (row stride os): (src - mean) / scale in float64, rounded\n"
"once (see skmdn._fused.pack_columns, which checks the addresses).\n"
"IndexError for a row outside [0, N).");

static PyObject *pack_columns(PyObject *self, PyObject *args)
{
    unsigned long long src_a, idx_a, mean_a, scale_a, out_a;
    Py_ssize_t N, width, rs, cs, n, os;
    int src_f64, out_f64;
    Py_ssize_t bad = -1;
    (void)self;
    if (!PyArg_ParseTuple(args, "KnnnnpKnKKKnp", &src_a, &N, &width, &rs, &cs,
                          &src_f64, &idx_a, &n, &mean_a, &scale_a, &out_a, &os,
                          &out_f64))
        return NULL;
    if (N < 0 || width < 0 || n < 0 || (idx_a == 0 && n != N)) {
        PyErr_SetString(PyExc_ValueError, "pack_columns: bad sizes");
        return NULL;
    }
    const void *src = (const void *)(uintptr_t)src_a;
    const int64_t *idx = (const int64_t *)(uintptr_t)idx_a;
    const double *mean = (const double *)(uintptr_t)mean_a;
    const double *scale = (const double *)(uintptr_t)scale_a;
    void *out = (void *)(uintptr_t)out_a;
    Py_BEGIN_ALLOW_THREADS
    if (src_f64 && out_f64)
        PACK_LOOP(double, double)
    else if (src_f64)
        PACK_LOOP(double, float)
    else if (out_f64)
        PACK_LOOP(float, double)
    else
        PACK_LOOP(float, float)
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_IndexError,
                     "pack_columns: row %zd is outside the %zd rows of the data",
                     bad, N);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"diag_nll", diag_nll, METH_VARARGS, diag_nll_doc},
    {"full_nll", full_nll, METH_VARARGS, full_nll_doc},
    {"gather_rows", gather_rows, METH_VARARGS, gather_rows_doc},
    {"adam", adam, METH_VARARGS, adam_doc},
    {"pack_columns", pack_columns, METH_VARARGS, pack_columns_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cmixture",
    "The mixture loss and its gradient in one compiled call.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cmixture(void)
{
    return PyModule_Create(&module);
}
