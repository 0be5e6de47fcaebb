/* The mixture loss and its gradient, for one floating type.

   Included twice by _cmixture.c, with REAL (float or double), FN (a name
   maker) and EXP, LOG, LOG1P, SQRT (the type's functions) defined. The formulas
   and their order are those of skmdn._mixture's diagonal_nll_forward and
   diagonal_nll_backward (diag_nll) and full_nll_forward and
   full_nll_backward (full_nll) with grad = 1, so the results agree with
   them to rounding; see skmdn/_fused.py for the layout of the arguments.
   gather_rows copies a training block's rows (exact), and adam is
   skmdn._training.FlatAdam.step's update (to rounding). */

/* m[i] = max over the K rows (row stride `stride`) of x[., i], NaN winning
   as in torch's amax; tot[i] = 0, the sum its caller accumulates. */
static inline void FN(column_max)(const REAL *restrict x, Py_ssize_t stride,
                                  int K, Py_ssize_t t, REAL *restrict m,
                                  REAL *restrict tot)
{
    SIMD
    for (Py_ssize_t i = 0; i < t; i++) {
        m[i] = x[i];
        tot[i] = 0;
    }
    for (int k = 1; k < K; k++) {
        SIMD
        for (Py_ssize_t i = 0; i < t; i++) {
            const REAL v = x[k * stride + i];
            m[i] = (v > m[i] || v != v) ? v : m[i];
        }
    }
}

/* One tile's log-weights: pi = softmax(logits) and lc = log_softmax, terms
   below e^-60 of the largest dropped from pi (logit points at the tile's
   first row; m and tot are scratch). */
static inline void FN(log_weights)(const REAL *restrict logit, Py_ssize_t n,
                                   int K, Py_ssize_t t, Py_ssize_t T,
                                   REAL *restrict pi, REAL *restrict lc,
                                   REAL *restrict m, REAL *restrict tot)
{
    const REAL drop = (REAL)DROP_BELOW;
    FN(column_max)(logit, n, K, t, m, tot);
    for (int k = 0; k < K; k++) {
        SIMD
        for (Py_ssize_t i = 0; i < t; i++) {
            const REAL sh = logit[k * n + i] - m[i];
            const REAL e = EXP(sh);
            pi[k * T + i] = sh > drop ? e : 0;
            lc[k * T + i] = sh;
            tot[i] += pi[k * T + i];
        }
    }
    SIMD
    for (Py_ssize_t i = 0; i < t; i++)
        m[i] = LOG(tot[i]);
    for (int k = 0; k < K; k++) {
        SIMD
        for (Py_ssize_t i = 0; i < t; i++) {
            pi[k * T + i] /= tot[i];
            lc[k * T + i] -= m[i];
        }
    }
}

/* One tile's responsibilities from the log-components lc (K, T), in place
   (unnormalised: e^(lc - max), terms below e^-60 dropped), tot their
   reciprocal sums; returns sum_i w_i log p_i (without the 2 pi term). */
static inline double FN(log_likelihood)(const REAL *restrict w, int K,
                                        Py_ssize_t t, Py_ssize_t T,
                                        REAL *restrict lc, REAL *restrict m,
                                        REAL *restrict tot)
{
    const REAL drop = (REAL)DROP_BELOW;
    FN(column_max)(lc, T, K, t, m, tot);
    for (int k = 0; k < K; k++) {
        SIMD
        for (Py_ssize_t i = 0; i < t; i++) {
            const REAL v = lc[k * T + i] - m[i];
            const REAL e = EXP(v);
            lc[k * T + i] = v > drop ? e : 0;
            tot[i] += lc[k * T + i];
        }
    }
    double part = 0.0;
    SIMD_SUM_PART
    for (Py_ssize_t i = 0; i < t; i++) {
        part += (double)w[i] * (double)(LOG(tot[i]) + m[i]);
        tot[i] = (REAL)1 / tot[i];
    }
    return part;
}

static CLONES double FN(diag_nll)(const REAL *restrict out, const REAL *restrict y,
                           const REAL *restrict w, REAL *restrict grad,
                           Py_ssize_t n, int K, int d, int kind,
                           const double *restrict fixed, double min_scale,
                           double constant_weight, REAL *restrict work,
                           Py_ssize_t T)
{
    const Py_ssize_t Kd = (Py_ssize_t)K * d;
    /* scale row of component k, output j: s[ks k + js j] */
    const int ks = kind == KIND_DIAGONAL ? d : kind == KIND_ISOTROPIC ? 1 : 0;
    const int js = kind == KIND_DIAGONAL || kind == KIND_FIXED ? 1 : 0;
    const int n_raw = raw_rows(kind, K, d), n_s = scale_rows(kind, K, d);
    const REAL *logit = out, *mu = out + K * n, *raw = out + (K + Kd) * n;
    REAL *g_logit = grad, *g_mu = grad + K * n, *g_raw = grad + (K + Kd) * n;
    REAL *pi = work, *lc = pi + K * T, *z = lc + K * T, *s = z + Kd * T;
    REAL *ls = s + n_s * T, *sig = ls + n_s * T, *gs = sig + n_raw * T;
    REAL *m = gs + n_raw * T, *tot = m + T, *acc = tot + T;
    double ll_sum = 0.0;

    for (Py_ssize_t i0 = 0; i0 < n; i0 += T) {
        const Py_ssize_t t = n - i0 < T ? n - i0 : T;
        FN(log_weights)(logit + i0, n, K, t, T, pi, lc, m, tot);
        /* scales: softplus(raw) + min_scale (torch's softplus: threshold 20) */
        for (int r = 0; r < n_raw; r++) {
            SIMD
            for (Py_ssize_t i = 0; i < t; i++) {
                /* sigmoid as 1 / (1 + e^-x), not e^x / (1 + e^x) with the
                   same exponential: the selects that form needs kept gcc
                   from vectorising the loop (5x slower, measured) */
                const REAL x = raw[r * n + i0 + i];
                const REAL up = EXP(x), down = EXP(-x);
                const REAL sp = x > (REAL)20 ? x : LOG1P(up);
                s[r * T + i] = sp + (REAL)min_scale;
                sig[r * T + i] = (REAL)1 / ((REAL)1 + down);
                gs[r * T + i] = 0;
            }
        }
        if (kind == KIND_FIXED) {
            for (int r = 0; r < n_s; r++) {
                SIMD
                for (Py_ssize_t i = 0; i < t; i++)
                    s[r * T + i] = (REAL)fixed[r];
            }
        }
        for (int r = 0; r < n_s; r++) { /* from here on s holds 1 / s */
            SIMD
            for (Py_ssize_t i = 0; i < t; i++) {
                ls[r * T + i] = LOG(s[r * T + i]);
                s[r * T + i] = (REAL)1 / s[r * T + i];
            }
        }
        /* log-components: log_pi - sum_j (log s + z^2 / 2) */
        for (int k = 0; k < K; k++) {
            SIMD
            for (Py_ssize_t i = 0; i < t; i++)
                acc[i] = 0;
            for (int j = 0; j < d; j++) {
                const Py_ssize_t kj = (Py_ssize_t)k * d + j, r = ks * k + js * j;
                SIMD
                for (Py_ssize_t i = 0; i < t; i++) {
                    const REAL zz = (y[j * n + i0 + i] - mu[kj * n + i0 + i]) * s[r * T + i];
                    z[kj * T + i] = zz;
                    acc[i] += ls[r * T + i] + (REAL)0.5 * zz * zz;
                }
            }
            SIMD
            for (Py_ssize_t i = 0; i < t; i++)
                lc[k * T + i] -= acc[i];
        }
        ll_sum += FN(log_likelihood)(w + i0, K, t, T, lc, m, tot);
        /* gradients: dl/dlogits = g - pi, dl/dmu = g z / s,
           dl/ds = g (z^2 - 1) / s, times -w (the loss is -w . l) */
        for (int k = 0; k < K; k++) {
            SIMD
            for (Py_ssize_t i = 0; i < t; i++) {
                const REAL g = lc[k * T + i] * tot[i], c = -w[i0 + i];
                g_logit[k * n + i0 + i] = (g - pi[k * T + i]) * c;
                acc[i] = g * c;
            }
            for (int j = 0; j < d; j++) {
                const Py_ssize_t kj = (Py_ssize_t)k * d + j, r = ks * k + js * j;
                if (n_raw == 0) {
                    SIMD
                    for (Py_ssize_t i = 0; i < t; i++)
                        g_mu[kj * n + i0 + i] = z[kj * T + i] * s[r * T + i] * acc[i];
                    continue;
                }
                SIMD
                for (Py_ssize_t i = 0; i < t; i++) {
                    const REAL inv = s[r * T + i], zz = z[kj * T + i];
                    const REAL u = zz * inv;
                    g_mu[kj * n + i0 + i] = u * acc[i];
                    gs[r * T + i] += (zz * u - inv) * acc[i];
                }
            }
        }
        for (int r = 0; r < n_raw; r++) {
            SIMD
            for (Py_ssize_t i = 0; i < t; i++)
                g_raw[r * n + i0 + i] = gs[r * T + i] * sig[r * T + i];
        }
    }
    return constant_weight * 0.5 * d * LOG_2PI - ll_sum;
}

/* The loss and gradient for noise_type='full', as
   skmdn._mixture.full_nll_forward and full_nll_backward compute them: the
   raw rows hold each component's lower triangle row by row (entry (a, b) at
   a (a + 1) / 2 + b), the diagonal through softplus + min_scale. z = L^-1
   (y - mu) by forward substitution, u = L^-T z by back substitution;
   dl/dmu = u, dl/dL_ab = u_a z_b - [a = b] / L_aa, times the
   responsibility; the diagonal's raw entries times softplus's derivative
   (torch's softplus_backward: 1 above its threshold of 20). */
static CLONES double FN(full_nll)(const REAL *restrict out, const REAL *restrict y,
                                  const REAL *restrict w, REAL *restrict grad,
                                  Py_ssize_t n, int K, int d, double min_scale,
                                  double constant_weight, REAL *restrict work,
                                  Py_ssize_t T)
{
    const Py_ssize_t Kd = (Py_ssize_t)K * d, Tri = (Py_ssize_t)d * (d + 1) / 2;
    const REAL *logit = out, *mu = out + K * n, *raw = out + (K + Kd) * n;
    REAL *g_logit = grad, *g_mu = grad + K * n, *g_raw = grad + (K + Kd) * n;
    REAL *pi = work, *lc = pi + K * T, *z = lc + K * T, *inv = z + Kd * T;
    REAL *sg = inv + Kd * T, *u = sg + Kd * T, *m = u + (Py_ssize_t)d * T;
    REAL *tot = m + T, *acc = tot + T;
    double ll_sum = 0.0;

    for (Py_ssize_t i0 = 0; i0 < n; i0 += T) {
        const Py_ssize_t t = n - i0 < T ? n - i0 : T;
        FN(log_weights)(logit + i0, n, K, t, T, pi, lc, m, tot);
        for (int k = 0; k < K; k++) {
            const REAL *tri = raw + (Py_ssize_t)k * Tri * n + i0;
            SIMD
            for (Py_ssize_t i = 0; i < t; i++)
                acc[i] = 0;
            for (Py_ssize_t a = 0; a < d; a++) {
                const Py_ssize_t ka = (Py_ssize_t)k * d + a, start = (Py_ssize_t)a * (a + 1) / 2;
                const REAL *diag = tri + (start + a) * n;
                SIMD
                for (Py_ssize_t i = 0; i < t; i++) {
                    const REAL x = diag[i];
                    const REAL up = EXP(x), down = EXP(-x);
                    const REAL sp = x > (REAL)20 ? x : LOG1P(up);
                    inv[ka * T + i] = sp + (REAL)min_scale; /* L, inverted below */
                    sg[ka * T + i] = (REAL)1 / ((REAL)1 + down);
                    z[ka * T + i] = y[a * n + i0 + i] - mu[ka * n + i0 + i];
                }
                SIMD
                for (Py_ssize_t i = 0; i < t; i++) {
                    const REAL L = inv[ka * T + i];
                    inv[ka * T + i] = (REAL)1 / L;
                    acc[i] += LOG(L);
                    /* softplus_backward is 1 above its threshold */
                    sg[ka * T + i] = diag[i] > (REAL)20 ? (REAL)1 : sg[ka * T + i];
                }
                for (Py_ssize_t b = 0; b < a; b++) {
                    const REAL *lab = tri + (start + b) * n;
                    const REAL *zb = z + ((Py_ssize_t)k * d + b) * T;
                    SIMD
                    for (Py_ssize_t i = 0; i < t; i++)
                        z[ka * T + i] -= lab[i] * zb[i];
                }
                SIMD
                for (Py_ssize_t i = 0; i < t; i++) {
                    const REAL zz = z[ka * T + i] * inv[ka * T + i];
                    z[ka * T + i] = zz;
                    acc[i] += (REAL)0.5 * zz * zz;
                }
            }
            SIMD
            for (Py_ssize_t i = 0; i < t; i++)
                lc[k * T + i] -= acc[i];
        }
        ll_sum += FN(log_likelihood)(w + i0, K, t, T, lc, m, tot);
        for (int k = 0; k < K; k++) {
            const REAL *tri = raw + (Py_ssize_t)k * Tri * n + i0;
            REAL *g_tri = g_raw + (Py_ssize_t)k * Tri * n + i0;
            const REAL *zk = z + (Py_ssize_t)k * d * T, *ik = inv + (Py_ssize_t)k * d * T;
            SIMD
            for (Py_ssize_t i = 0; i < t; i++) {
                const REAL g = lc[k * T + i] * tot[i], c = -w[i0 + i];
                g_logit[k * n + i0 + i] = (g - pi[k * T + i]) * c;
                acc[i] = g * c;
            }
            for (Py_ssize_t a = 0; a < d; a++) { /* u = z */
                SIMD
                for (Py_ssize_t i = 0; i < t; i++)
                    u[a * T + i] = zk[a * T + i];
            }
            for (Py_ssize_t a = d - 1; a >= 0; a--) { /* u = L^-T z */
                const Py_ssize_t start = (Py_ssize_t)a * (a + 1) / 2;
                SIMD
                for (Py_ssize_t i = 0; i < t; i++)
                    u[a * T + i] *= ik[a * T + i];
                for (Py_ssize_t b = 0; b < a; b++) {
                    const REAL *lab = tri + (start + b) * n;
                    SIMD
                    for (Py_ssize_t i = 0; i < t; i++)
                        u[b * T + i] -= lab[i] * u[a * T + i];
                }
            }
            for (Py_ssize_t a = 0; a < d; a++) {
                const Py_ssize_t ka = (Py_ssize_t)k * d + a, start = (Py_ssize_t)a * (a + 1) / 2;
                for (Py_ssize_t b = 0; b < a; b++) {
                    REAL *gab = g_tri + (start + b) * n;
                    SIMD
                    for (Py_ssize_t i = 0; i < t; i++)
                        gab[i] = u[a * T + i] * zk[b * T + i] * acc[i];
                }
                REAL *gaa = g_tri + (start + a) * n;
                SIMD
                for (Py_ssize_t i = 0; i < t; i++) {
                    const REAL on = u[a * T + i] * zk[a * T + i] - ik[a * T + i];
                    gaa[i] = on * sg[ka * T + i] * acc[i];
                    g_mu[ka * n + i0 + i] = u[a * T + i] * acc[i];
                }
            }
        }
    }
    return constant_weight * 0.5 * d * LOG_2PI - ll_sum;
}

/* A block's rows of the packed training data, transposed: row r of packed
   (C values) goes to column i of xT (its first F values) and of rest (the
   other C - F), r = idx[i] (or start + i when idx is NULL). The rows of a
   shuffled batch are scattered over the data, so each read is a cache miss;
   the prefetch a few rows ahead lets those misses overlap. Returns -1, or
   the first i whose row is not in [0, N). */
static Py_ssize_t FN(gather_rows)(const REAL *restrict packed, Py_ssize_t C,
                                  Py_ssize_t N, const int64_t *restrict idx,
                                  Py_ssize_t start, Py_ssize_t n, Py_ssize_t F,
                                  REAL *restrict xT, REAL *restrict rest)
{
    const Py_ssize_t ahead = 16;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t r = idx != NULL ? idx[i] : (int64_t)(start + i);
        if (r < 0 || r >= N)
            return i;
        if (idx != NULL && i + ahead < n) {
            const int64_t next = idx[i + ahead];
            if (next >= 0 && next < N)
                PREFETCH(packed + next * C);
        }
        const REAL *restrict row = packed + r * C;
        for (Py_ssize_t f = 0; f < F; f++)
            xT[f * n + i] = row[f];
        for (Py_ssize_t f = F; f < C; f++)
            rest[(f - F) * n + i] = row[f];
    }
    return -1;
}

/* One Adam update of n parameters in one pass, in the order and precision
   of skmdn._training.FlatAdam.step's torch operations: g = grad + decay *
   flat; m += (1 - beta1) (g - m); v = beta2 v + (1 - beta2) g g; flat -=
   step_size m / (sqrt(v) / bias2 + eps). */
static CLONES void FN(adam)(REAL *restrict flat, const REAL *restrict grad,
                            const REAL *restrict decay, REAL *restrict m,
                            REAL *restrict v, Py_ssize_t n, double beta1,
                            double beta2, double bias2, double step_size,
                            double eps)
{
    const REAL a = (REAL)(1.0 - beta1), b2 = (REAL)beta2, c = (REAL)(1.0 - beta2);
    const REAL bc = (REAL)bias2, s = (REAL)(-step_size), e = (REAL)eps;
    SIMD
    for (Py_ssize_t i = 0; i < n; i++) {
        const REAL g = grad[i] + decay[i] * flat[i];
        m[i] = m[i] + a * (g - m[i]);
        v[i] = v[i] * b2 + c * (g * g);
        flat[i] = flat[i] + s * (m[i] / (SQRT(v[i]) / bc + e));
    }
}
