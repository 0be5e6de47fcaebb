/* A whole training block of an MLP, for one floating type: the products
   through the BLAS that torch itself calls (MKL's gemm, found in
   libtorch_cpu by skmdn._fused), the bias, activation and their gradients
   in one pass per row, the mixture loss of _cmixture_kernel.h, all without
   the GIL.

   Included twice by _cmixture.c after _cmixture_kernel.h, with REAL and FN
   defined. The steps and their order are skmdn._backprop.ManualBackprop's:
   the products are the calls torch's mm makes for the same layouts (so the
   same bits), the bias add is the same single rounding, tanh is MKL's
   (torch's path uses numpy's: the two differ by an ulp or so) and the bias
   gradients are sums in double (torch's mv sums in REAL). */

typedef void (*FN(gemm_fn))(const char *, const char *, const long long *,
                            const long long *, const long long *, const REAL *,
                            const REAL *, const long long *, const REAL *,
                            const long long *, const REAL *, REAL *,
                            const long long *);

/* C = A B, row-major: C (m, n), A (m, k) and B (k, n), or A given as the
   row-major (k, m) matrix it is the transpose of when ta (B as (n, k) when
   tb). This is the column-major product C^T = B^T A^T that torch's mm asks
   the BLAS for with these layouts. The sizes are passed as 64-bit integers
   whose low half is the 32-bit value an LP64 BLAS reads (x86-64 is little
   endian), so either integer width of the BLAS interface works. */
static void FN(mm)(FN(gemm_fn) gemm, long long m, long long n, long long k,
                   const REAL *A, int ta, const REAL *B, int tb, REAL *C)
{
    const REAL one = 1, zero = 0;
    const long long lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
    gemm(tb ? "T" : "N", ta ? "T" : "N", &n, &m, &k, &one, B, &ldb, A, &lda,
         &zero, C, &ldc);
}

/* Each row j of x (rows, n): x += b[j], then the activation, in place
   (tanh: glibc's vector tanh where SKMDN_MVEC, at most 4 ulp). */
static CLONES void FN(bias_act)(REAL *restrict x, const REAL *restrict b,
                                Py_ssize_t rows, Py_ssize_t n, int act)
{
    for (Py_ssize_t j = 0; j < rows; j++) {
        REAL *restrict r = x + j * n;
        const REAL bj = b[j];
        if (act == ACT_RELU) {
            SIMD
            for (Py_ssize_t i = 0; i < n; i++) {
                const REAL v = r[i] + bj;
                r[i] = v < 0 ? 0 : v; /* NaN stays NaN, as torch's relu */
            }
        } else if (act == ACT_TANH) {
            SIMD
            for (Py_ssize_t i = 0; i < n; i++)
                r[i] = TANH(r[i] + bj);
        } else {
            SIMD
            for (Py_ssize_t i = 0; i < n; i++)
                r[i] = r[i] + bj;
        }
    }
}

/* Each row j of the gradient g (rows, n) with respect to an activation's
   output y: through the activation in place (tanh: g (1 - y y), relu: 0
   where y <= 0, as torch's tanh_backward and threshold_backward), then
   bg[j] = the row's sum (in double). */
static CLONES void FN(act_back_bias)(REAL *restrict g, const REAL *restrict y,
                                     REAL *restrict bg, Py_ssize_t rows,
                                     Py_ssize_t n, int act)
{
    for (Py_ssize_t j = 0; j < rows; j++) {
        REAL *restrict r = g + j * n;
        const REAL *restrict o = y + j * n;
        double part = 0;
        if (act == ACT_TANH) {
            SIMD_SUM_PART
            for (Py_ssize_t i = 0; i < n; i++) {
                const REAL v = r[i] * ((REAL)1 - o[i] * o[i]);
                r[i] = v;
                part += (double)v;
            }
        } else if (act == ACT_RELU) {
            SIMD_SUM_PART
            for (Py_ssize_t i = 0; i < n; i++) {
                const REAL v = o[i] <= 0 ? (REAL)0 : r[i];
                r[i] = v;
                part += (double)v;
            }
        } else {
            SIMD_SUM_PART
            for (Py_ssize_t i = 0; i < n; i++)
                part += (double)r[i];
        }
        bg[j] = (REAL)part;
    }
}

/* The block's loss (the loss kernel's), its gradients written to the
   plan's; y and w are the targets (d, n) and weights (n,). When the plan
   has packed rows, they are first gathered (gather_rows) into act[0] and
   y, w (the rows after y's), and w divided by n_total; *bad is -1, or the
   first row outside the data (then nothing else is done). */
static double FN(mlp_block)(const mlp_plan *p, REAL *y, REAL *w, int K, int d,
                            int kind, const double *fixed, double min_scale,
                            double constant_weight, REAL *work, Py_ssize_t T,
                            Py_ssize_t *bad)
{
    const FN(gemm_fn) gemm = (FN(gemm_fn))p->gemm;
    const int L = p->L;
    const Py_ssize_t n = p->n;
    const long long *wd = p->width;
    REAL *const *act = (REAL *const *)p->act, *const *delta = (REAL *const *)p->delta;
    *bad = -1;
    if (p->packed != NULL) {
        *bad = FN(gather_rows)((const REAL *)p->packed, p->C, p->N, p->idx,
                               p->start, n, wd[0], act[0], y);
        if (*bad >= 0)
            return 0;
        for (Py_ssize_t i = 0; i < n; i++)
            w[i] = w[i] / (REAL)p->n_total;
    }
    for (int i = 0; i < L; i++) {
        FN(mm)(gemm, wd[i + 1], n, wd[i], (const REAL *)p->W[i], 0, act[i], 0,
               act[i + 1]);
        FN(bias_act)(act[i + 1], (const REAL *)p->b[i], wd[i + 1], n,
                     i < L - 1 ? p->act_kind : ACT_IDENTITY);
    }
    double loss;
    if (kind == KIND_FULL)
        loss = FN(full_nll)(act[L], y, w, delta[L], n, K, d, min_scale,
                            constant_weight, work, T);
    else
        loss = FN(diag_nll)(act[L], y, w, delta[L], n, K, d, kind, fixed,
                            min_scale, constant_weight, work, T);
    for (int i = L - 1; i >= 0; i--) {
        REAL *g = delta[i + 1];
        FN(act_back_bias)(g, act[i + 1], (REAL *)p->bg[i], wd[i + 1], n,
                          i < L - 1 ? p->act_kind : ACT_IDENTITY);
        REAL *Wg = (REAL *)p->Wg[i];
        if (i > 0) {
            FN(mm)(gemm, wd[i + 1], wd[i], n, g, 0, act[i], 1, Wg);
            FN(mm)(gemm, wd[i], n, wd[i + 1], (const REAL *)p->W[i], 1, g, 0,
                   delta[i]);
        } else { /* (x^T g), then its transpose, as ManualBackprop */
            REAL *first = (REAL *)p->first;
            FN(mm)(gemm, wd[0], wd[1], n, act[0], 0, g, 1, first);
            for (long long a = 0; a < wd[1]; a++)
                for (long long b = 0; b < wd[0]; b++)
                    Wg[a * wd[0] + b] = first[b * wd[1] + a];
        }
    }
    return loss;
}
