/* skmdn._cmixture: the mixture loss's forward and backward pass in one
   compiled call that releases the GIL (optional; see _fused.py): diag_nll
   for the diagonal noise types, full_nll for noise_type='full'; and
   gather_rows, a training block's rows of the packed data, transposed;
   adam, an optimiser step in one pass; pack_columns, the standardised
   columns of the packed training data in one pass; mlp_block, a whole
   training block of the network (_cmixture_block.h), its products through
   the BLAS that torch calls (set_blas; mm for tests); and helper_*, a loop
   on another thread that takes such blocks as they are posted.

   One call replaces dozens of small torch kernels, each holding the GIL for
   its dispatch. The loops run over a tile of T rows at a time, the batch
   last, so that they vectorise; on x86-64 with glibc >= 2.35 (SKMDN_MVEC,
   set by setup.py) exp, log and log1p are glibc's vector functions
   (libmvec, at most 4 ulp; so is double tanh, and float tanh is
   rational_tanhf) and the code is cloned for AVX2 + FMA, chosen when the
   module loads. */

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
float tanhf(float);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
double log1p(double);
#pragma omp declare simd notinbranch
double tanh(double);
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define VECTOR_MATH 1
#else
#define VECTOR_MATH 0
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
#define KIND_FULL 4 /* mlp_block's code for noise_type='full' */
#define ACT_IDENTITY 0
#define ACT_TANH 1
#define ACT_RELU 2
#define MAX_LAYERS 64 /* mlp_block's linear layers */
#define DROP_BELOW (-60.0)
#define LOG_2PI 1.8378770664093453

static int scale_rows(int kind, int K, int d)
{
    return kind == KIND_DIAGONAL ? K * d
         : kind == KIND_ISOTROPIC ? K
         : kind == KIND_SHARED ? 1
         : d;
}

/* A training block of mlp_block: L linear layers (the trunk's, then the
   head), layer i mapping width[i] features to width[i + 1]; its weight
   W[i] (width[i + 1], width[i]) and bias b[i], their gradients Wg[i] and
   bg[i]; the feature-major activations act[i] (width[i], n) and gradients
   delta[i] (delta[0] unused); first, layer 0's weight gradient transposed;
   the BLAS's gemm of the type; and, where the block gathers its rows, the
   packed (N, C) data, the index (NULL: rows start, start + 1, ...) and
   the weights' divisor n_total (packed NULL: no gather). */
typedef struct {
    int L, act_kind;
    Py_ssize_t n;
    long long width[MAX_LAYERS + 1];
    void *W[MAX_LAYERS], *b[MAX_LAYERS], *Wg[MAX_LAYERS], *bg[MAX_LAYERS];
    void *act[MAX_LAYERS + 1], *delta[MAX_LAYERS + 1], *first;
    void *gemm;
    const void *packed;
    const int64_t *idx;
    Py_ssize_t C, N, start, n_total;
} mlp_plan;

/* tanh in float: Eigen's rational approximation (generic_fast_tanh_float:
   odd degree-13 over even degree-6 polynomials on [-7.9053, 7.9053]).
   Checked over every float: within 2.9e-7 of tanh (4.1e-7 without FMA),
   also relatively near 0 (numpy's tanh, torch's path: 3.1e-8), never
   beyond +-1, odd; NaN stays NaN (c < a ? c : a is a when a is NaN).
   Several times faster than glibc's vector tanhf here. */
static inline float rational_tanhf(float a)
{
    const float c = 7.90531110763549805f;
    float x = c < a ? c : a;
    x = -c > x ? -c : x;
    const float x2 = x * x;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = x2 * p + -8.60467152213735e-11f;
    p = x2 * p + 5.12229709037114e-08f;
    p = x2 * p + 1.48572235717979e-05f;
    p = x2 * p + 6.37261928875436e-04f;
    p = x2 * p + 4.89352455891786e-03f;
    p = x * p;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = x2 * q + 2.26843463243900e-03f;
    q = x2 * q + 4.89352518554385e-03f;
    return p / q;
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
#define TANH rational_tanhf

#include "_cmixture_kernel.h"
#include "_cmixture_block.h"
#undef REAL
#undef FN
#undef EXP
#undef LOG
#undef LOG1P
#undef SQRT
#undef TANH

#define REAL double
#define FN(name) name##_f64
#define EXP exp
#define LOG log
#define LOG1P log1p
#define SQRT sqrt
#define TANH tanh

#include "_cmixture_kernel.h"
#include "_cmixture_block.h"

/* Rows per tile: the tile's scratch arrays in at most 64 KiB (below
   malloc's mmap threshold, so no page faults per call). */
static Py_ssize_t tile_rows(Py_ssize_t per_row, size_t size)
{
    Py_ssize_t T = (Py_ssize_t)(65536 / (per_row * (Py_ssize_t)size)) / 8 * 8;
    return T < 8 ? 8 : T > 512 ? 512 : T;
}

/* Scratch values per row of the loss kernels: diag_nll's for kind, and
   full_nll's (kind KIND_FULL). */
static Py_ssize_t loss_per_row(int kind, int K, int d)
{
    if (kind == KIND_FULL)
        return 2 * K + 3 * (Py_ssize_t)K * d + d + 3;
    return 2 * K + (Py_ssize_t)K * d + 2 * scale_rows(kind, K, d)
         + 2 * raw_rows(kind, K, d) + 3;
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
    Py_ssize_t T;
    void *work = tile_scratch(loss_per_row(kind, K, d), f64, &T);
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
    Py_ssize_t T;
    void *work = tile_scratch(loss_per_row(KIND_FULL, K, d), f64, &T);
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

/* The BLAS functions of mlp_block, set by set_blas: gemm for float and
   double, or NULL. They run with the calling thread's BLAS thread count,
   which torch sets (torch.set_num_threads), as torch's own products do. */
static void *blas_gemm[2];

PyDoc_STRVAR(set_blas_doc,
"set_blas(sgemm, dgemm)\n"
"--\n\n"
"The addresses of the functions mlp_block calls (0 for none: mlp_block\n"
"then refuses); see skmdn._fused._find_blas.");

static PyObject *set_blas(PyObject *self, PyObject *args)
{
    unsigned long long sgemm, dgemm;
    (void)self;
    if (!PyArg_ParseTuple(args, "KK", &sgemm, &dgemm))
        return NULL;
    blas_gemm[0] = (void *)(uintptr_t)sgemm;
    blas_gemm[1] = (void *)(uintptr_t)dgemm;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mm_doc,
"mm(f64, m, n, k, A, ta, B, tb, C)\n"
"--\n\n"
"C (m, n) = A B through the BLAS of set_blas, row-major, A given as its\n"
"transpose (k, m) when ta, B as (n, k) when tb: mlp_block's products (the\n"
"arguments are addresses; for tests and the check in skmdn._fused).");

static PyObject *mm(PyObject *self, PyObject *args)
{
    int f64, ta, tb;
    long long m, n, k;
    unsigned long long A, B, C;
    (void)self;
    if (!PyArg_ParseTuple(args, "pLLLKpKpK", &f64, &m, &n, &k, &A, &ta, &B, &tb,
                          &C))
        return NULL;
    if (blas_gemm[f64] == NULL || m < 1 || n < 1 || k < 1) {
        PyErr_SetString(PyExc_ValueError, "mm: no BLAS, or bad sizes");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (f64)
        mm_f64((gemm_fn_f64)blas_gemm[1], m, n, k, (const double *)(uintptr_t)A,
               ta, (const double *)(uintptr_t)B, tb, (double *)(uintptr_t)C);
    else
        mm_f32((gemm_fn_f32)blas_gemm[0], m, n, k, (const float *)(uintptr_t)A,
               ta, (const float *)(uintptr_t)B, tb, (float *)(uintptr_t)C);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* count addresses of the tuple t to out; -1 with an exception set when t
   is not a tuple of that many integers. */
static int addresses(PyObject *t, Py_ssize_t count, void **out, const char *what)
{
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != count) {
        PyErr_Format(PyExc_ValueError, "mlp_block: %s must be a tuple of %zd "
                     "addresses", what, count);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        unsigned long long a = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(t, i));
        if (a == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
        out[i] = (void *)(uintptr_t)a;
    }
    return 0;
}

/* One mlp_block call: the plan and the loss's arguments, parsed with the
   GIL held (parse_block), run without it (run_block), its scratch freed and
   its result returned with the GIL again (finish_block). */
typedef struct {
    int f64, K, d, kind;
    mlp_plan p;
    void *y, *w, *work;
    const double *fixed;
    double min_scale, constant_weight, loss;
    Py_ssize_t T, bad;
} block_call;

/* args as mlp_block's to c, its scratch allocated: 0, or -1 with an
   exception set (nothing allocated). */
static int parse_block(PyObject *args, block_call *c)
{
    int f64, act_kind, K, d, kind;
    Py_ssize_t n, C, N, start, n_total;
    PyObject *widths, *params, *grads, *acts, *deltas;
    unsigned long long first, y, w, fixed, packed, idx;
    double min_scale, constant_weight;
    mlp_plan *p = &c->p;
    void *pairs[2 * MAX_LAYERS];
    if (!PyArg_ParseTuple(args, "pinOOOOOKKKiiiKddKnnKnn", &f64, &act_kind, &n,
                          &widths, &params, &grads, &acts, &deltas, &first, &y,
                          &w, &K, &d, &kind, &fixed, &min_scale,
                          &constant_weight, &packed, &C, &N, &idx, &start,
                          &n_total))
        return -1;
    if (blas_gemm[f64] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mlp_block: no BLAS (set_blas)");
        return -1;
    }
    const Py_ssize_t L = PyTuple_Check(widths) ? PyTuple_GET_SIZE(widths) - 1 : 0;
    if (L < 1 || L > MAX_LAYERS || n < 0 || K < 1 || d < 1 || kind < KIND_FIXED
        || kind > KIND_FULL || act_kind < ACT_IDENTITY || act_kind > ACT_RELU
        || (packed != 0 && (C < 1 || N < 0 || start < 0 || n_total < 1))) {
        PyErr_SetString(PyExc_ValueError, "mlp_block: bad sizes or kinds");
        return -1;
    }
    p->L = (int)L;
    p->act_kind = act_kind;
    p->n = n;
    for (Py_ssize_t i = 0; i <= L; i++) {
        p->width[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(widths, i));
        if (p->width[i] < 1) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "mlp_block: bad widths");
            return -1;
        }
    }
    if (addresses(params, 2 * L, pairs, "params") < 0)
        return -1;
    for (Py_ssize_t i = 0; i < L; i++) {
        p->W[i] = pairs[2 * i];
        p->b[i] = pairs[2 * i + 1];
    }
    if (addresses(grads, 2 * L, pairs, "grads") < 0)
        return -1;
    for (Py_ssize_t i = 0; i < L; i++) {
        p->Wg[i] = pairs[2 * i];
        p->bg[i] = pairs[2 * i + 1];
    }
    if (addresses(acts, L + 1, p->act, "acts") < 0
        || addresses(deltas, L + 1, p->delta, "deltas") < 0)
        return -1;
    p->first = (void *)(uintptr_t)first;
    p->gemm = blas_gemm[f64];
    p->packed = (const void *)(uintptr_t)packed;
    p->idx = (const int64_t *)(uintptr_t)idx;
    p->C = C;
    p->N = N;
    p->start = start;
    p->n_total = n_total;
    c->f64 = f64;
    c->K = K;
    c->d = d;
    c->kind = kind;
    c->y = (void *)(uintptr_t)y;
    c->w = (void *)(uintptr_t)w;
    c->fixed = (const double *)(uintptr_t)fixed;
    c->min_scale = min_scale;
    c->constant_weight = constant_weight;
    c->work = tile_scratch(loss_per_row(kind, K, d), f64, &c->T);
    return c->work == NULL ? -1 : 0;
}

static void run_block(block_call *c)
{
    if (c->f64)
        c->loss = mlp_block_f64(&c->p, (double *)c->y, (double *)c->w, c->K,
                                c->d, c->kind, c->fixed, c->min_scale,
                                c->constant_weight, (double *)c->work, c->T,
                                &c->bad);
    else
        c->loss = mlp_block_f32(&c->p, (float *)c->y, (float *)c->w, c->K,
                                c->d, c->kind, c->fixed, c->min_scale,
                                c->constant_weight, (float *)c->work, c->T,
                                &c->bad);
}

static PyObject *finish_block(block_call *c)
{
    free(c->work);
    c->work = NULL;
    if (c->bad >= 0) {
        PyErr_Format(PyExc_IndexError,
                     "mlp_block: row %zd of the block is outside the %zd rows "
                     "of the data", c->bad, c->p.N);
        return NULL;
    }
    return PyFloat_FromDouble(c->loss);
}

PyDoc_STRVAR(mlp_block_doc,
"mlp_block(f64, act, n, widths, params, grads, acts, deltas, first, y, w,\n"
"          K, d, kind, fixed, min_scale, constant_weight,\n"
"          packed, C, N, idx, start, n_total)\n"
"--\n\n"
"One training block of an MLP and its mixture loss: the loss (a float),\n"
"the gradients written to grads ((weight, bias) addresses per layer, as\n"
"params). widths are the L + 1 layer widths, acts and deltas the L + 1\n"
"feature-major workspaces, kind the loss kernel's (4: full). When packed\n"
"is not 0, the block first gathers its rows as gather_rows does, its\n"
"targets and weights to y and w, and divides the weights by n_total. See\n"
"skmdn._fused.mlp_block, which checks the addresses.");

static PyObject *mlp_block(PyObject *self, PyObject *args)
{
    block_call c;
    (void)self;
    if (parse_block(args, &c) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    run_block(&c);
    Py_END_ALLOW_THREADS
    return finish_block(&c);
}

/* A helper thread for every other block of a step. A worker thread of a
   Python pool enters helper_serve, which waits for blocks without the GIL,
   spinning, so that a block posted by the calling thread starts within a
   microsecond instead of after the tens of microseconds a sleeping thread
   of this VM takes to wake (measured: a pool's worker started its block
   80 us after the calling thread, and the step waited as long again to
   learn of its end); after idle_ns without a block (2 ms by default), or
   at helper_stop, it returns to its pool. The state moves IDLE (or STOP)
   -> POSTED (helper_post) -> RUNNING -> DONE (the loop, or helper_wait
   itself when the block is still waiting for the loop: a loop not yet
   started, or slowed by another process, then costs the caller nothing)
   -> IDLE (helper_wait); IDLE -> STOP (helper_stop) -> IDLE (the loop,
   leaving). alive counts the loops running. One thread posts and waits,
   one block at a time. */
#if defined(__GNUC__) && !defined(_WIN32)
#include <sched.h>
#include <time.h>
#define BLOCK_HELPER 1

enum { H_IDLE, H_POSTED, H_RUNNING, H_DONE, H_STOP };
#define SPIN_NS 20000 /* pure spinning; then yielding the core each turn */

typedef struct {
    int state, alive; /* read and written with __atomic builtins */
    long long idle_ns; /* the loop's wait for the next block */
    block_call job;
} block_helper;

static const char HELPER[] = "skmdn._cmixture.helper";

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* One turn of a wait that began at began: a pause, or, once it has lasted
   SPIN_NS, the core handed to whatever else is runnable on it (another
   process on a busy machine), so that a wait never keeps a block from a
   core. Returns the time, read every 64 turns (else 0). */
static long long wait_turn(long long began, unsigned *turn)
{
    if (++*turn % 64 != 0) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return 0;
    }
    const long long t = now_ns();
    if (t - began > SPIN_NS)
        sched_yield();
    return t;
}

static int load(const int *a)
{
    return __atomic_load_n(a, __ATOMIC_ACQUIRE);
}

static void store(int *a, int value)
{
    __atomic_store_n(a, value, __ATOMIC_RELEASE);
}

static int swap(int *a, int from, int to)
{
    return __atomic_compare_exchange_n(a, &from, to, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

static void helper_free(PyObject *capsule)
{
    block_helper *h = PyCapsule_GetPointer(capsule, HELPER);
    if (h != NULL)
        free(h->job.work);
    free(h);
}

/* The helper, args[0]; NULL with an exception set if it is not one. */
static block_helper *helper_of(PyObject *args)
{
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "a helper (helper_new) is needed");
        return NULL;
    }
    return PyCapsule_GetPointer(PyTuple_GET_ITEM(args, 0), HELPER);
}

PyDoc_STRVAR(helper_new_doc,
"helper_new(idle_ns=2000000)\n--\n\n"
"A helper for every other block of a step (see helper_post), whose loop\n"
"waits idle_ns nanoseconds for the next block before it returns.");

static PyObject *helper_new(PyObject *self, PyObject *args)
{
    long long idle_ns = 2000000;
    (void)self;
    if (!PyArg_ParseTuple(args, "|L", &idle_ns))
        return NULL;
    if (idle_ns < 0) {
        PyErr_SetString(PyExc_ValueError, "helper_new: idle_ns must be >= 0");
        return NULL;
    }
    block_helper *h = calloc(1, sizeof(block_helper));
    if (h == NULL)
        return PyErr_NoMemory();
    h->idle_ns = idle_ns;
    PyObject *capsule = PyCapsule_New(h, HELPER, helper_free);
    if (capsule == NULL)
        free(h);
    return capsule;
}

PyDoc_STRVAR(helper_post_doc,
"helper_post(helper, *mlp_block_args)\n--\n\n"
"Hand a block (mlp_block's arguments) to the helper and return at once:\n"
"True if a loop is running (helper_serve), False if the caller should\n"
"start one on another thread. helper_wait gives the block's loss; the\n"
"block's tensors must stay alive until then.");

static PyObject *helper_post(PyObject *self, PyObject *args)
{
    (void)self;
    block_helper *h = helper_of(args);
    if (h == NULL)
        return NULL;
    PyObject *rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    if (rest == NULL)
        return NULL;
    block_call c;
    const int parsed = parse_block(rest, &c);
    Py_DECREF(rest);
    if (parsed < 0)
        return NULL;
    for (;;) { /* a loop leaving after helper_stop turns STOP to IDLE */
        const int state = load(&h->state);
        if (state != H_IDLE && state != H_STOP) {
            free(c.work);
            PyErr_SetString(PyExc_RuntimeError,
                            "helper_post: a block is already posted (helper_wait)");
            return NULL;
        }
        h->job = c; /* a loop reads it only once it sees POSTED */
        if (swap(&h->state, state, H_POSTED))
            return PyBool_FromLong(load(&h->alive) > 0);
    }
}

PyDoc_STRVAR(helper_serve_doc,
"helper_serve(helper)\n--\n\n"
"Run the blocks posted to helper, without the GIL, until none has come for\n"
"its idle_ns or helper_stop.");

static PyObject *helper_serve(PyObject *self, PyObject *args)
{
    (void)self;
    block_helper *h = helper_of(args);
    if (h == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    __atomic_add_fetch(&h->alive, 1, __ATOMIC_ACQ_REL);
    long long idle = now_ns();
    unsigned turn = 0;
    for (;;) {
        const int state = load(&h->state);
        if (state == H_POSTED && swap(&h->state, H_POSTED, H_RUNNING)) {
            run_block(&h->job);
            store(&h->state, H_DONE);
            idle = now_ns();
            turn = 0;
            continue;
        }
        if (state == H_STOP && swap(&h->state, H_STOP, H_IDLE))
            break;
        const long long t = wait_turn(idle, &turn);
        if (t - idle > h->idle_ns && state != H_POSTED)
            break; /* a block posted as it leaves: helper_wait runs it */
    }
    __atomic_sub_fetch(&h->alive, 1, __ATOMIC_ACQ_REL);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(helper_wait_doc,
"helper_wait(helper)\n--\n\n"
"The posted block's loss (mlp_block's), once it is done: run here if no\n"
"loop has taken it yet.");

static PyObject *helper_wait(PyObject *self, PyObject *args)
{
    (void)self;
    block_helper *h = helper_of(args);
    if (h == NULL)
        return NULL;
    const int state = load(&h->state);
    if (state == H_IDLE || state == H_STOP) {
        PyErr_SetString(PyExc_RuntimeError, "helper_wait: no block was posted");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (swap(&h->state, H_POSTED, H_RUNNING)) { /* no loop has taken it */
        run_block(&h->job);
        store(&h->state, H_DONE);
    }
    const long long began = now_ns();
    unsigned turn = 0;
    while (load(&h->state) != H_DONE)
        wait_turn(began, &turn);
    Py_END_ALLOW_THREADS
    block_call c = h->job;
    h->job.work = NULL;
    store(&h->state, H_IDLE);
    return finish_block(&c);
}

PyDoc_STRVAR(helper_stop_doc,
"helper_stop(helper)\n--\n\n"
"Let the helper's loop return to its pool now if it is waiting for a block.");

static PyObject *helper_stop(PyObject *self, PyObject *args)
{
    (void)self;
    block_helper *h = helper_of(args);
    if (h == NULL)
        return NULL;
    swap(&h->state, H_IDLE, H_STOP);
    Py_RETURN_NONE;
}
#else
#define BLOCK_HELPER 0
#endif

static PyMethodDef methods[] = {
    {"diag_nll", diag_nll, METH_VARARGS, diag_nll_doc},
    {"full_nll", full_nll, METH_VARARGS, full_nll_doc},
    {"gather_rows", gather_rows, METH_VARARGS, gather_rows_doc},
    {"adam", adam, METH_VARARGS, adam_doc},
    {"pack_columns", pack_columns, METH_VARARGS, pack_columns_doc},
    {"set_blas", set_blas, METH_VARARGS, set_blas_doc},
    {"mlp_block", mlp_block, METH_VARARGS, mlp_block_doc},
    {"mm", mm, METH_VARARGS, mm_doc},
#if BLOCK_HELPER
    {"helper_new", helper_new, METH_VARARGS, helper_new_doc},
    {"helper_post", helper_post, METH_VARARGS, helper_post_doc},
    {"helper_serve", helper_serve, METH_VARARGS, helper_serve_doc},
    {"helper_wait", helper_wait, METH_VARARGS, helper_wait_doc},
    {"helper_stop", helper_stop, METH_VARARGS, helper_stop_doc},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cmixture",
    "The mixture loss and its gradient in one compiled call.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cmixture(void)
{
    PyObject *m = PyModule_Create(&module);
    /* 1 where tanh is a vector function (mlp_block's tanh is fast) */
    if (m != NULL && PyModule_AddIntConstant(m, "VECTOR_MATH", VECTOR_MATH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
