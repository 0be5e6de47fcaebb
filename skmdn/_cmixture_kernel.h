/* The diagonal mixture loss and its gradient, for one floating type.

   Included twice by _cmixture.c, with REAL (float or double), FN (a name
   maker) and EXP, LOG, LOG1P (the type's functions) defined. The formulas
   and their order are those of skmdn._mixture.diagonal_nll_forward and
   diagonal_nll_backward with grad = 1, so the results agree with them to
   rounding; see skmdn/_fused.py for the layout of the arguments. */

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
    const REAL drop = (REAL)DROP_BELOW;
    double ll_sum = 0.0;

    for (Py_ssize_t i0 = 0; i0 < n; i0 += T) {
        const Py_ssize_t t = n - i0 < T ? n - i0 : T;
        /* log-weights: log_softmax with terms below e^-60 dropped */
        SIMD
        for (Py_ssize_t i = 0; i < t; i++) {
            m[i] = logit[i0 + i];
            tot[i] = 0;
        }
        for (int k = 1; k < K; k++) {
            SIMD
            for (Py_ssize_t i = 0; i < t; i++) {
                const REAL v = logit[k * n + i0 + i];
                m[i] = (v > m[i] || v != v) ? v : m[i]; /* NaN wins, as amax */
            }
        }
        for (int k = 0; k < K; k++) {
            SIMD
            for (Py_ssize_t i = 0; i < t; i++) {
                const REAL sh = logit[k * n + i0 + i] - m[i];
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
        /* responsibilities and the log-likelihood */
        SIMD
        for (Py_ssize_t i = 0; i < t; i++) {
            m[i] = lc[i];
            tot[i] = 0;
        }
        for (int k = 1; k < K; k++) {
            SIMD
            for (Py_ssize_t i = 0; i < t; i++) {
                const REAL v = lc[k * T + i];
                m[i] = (v > m[i] || v != v) ? v : m[i];
            }
        }
        for (int k = 0; k < K; k++) {
            SIMD
            for (Py_ssize_t i = 0; i < t; i++) {
                const REAL v = lc[k * T + i] - m[i];
                const REAL e = EXP(v);
                lc[k * T + i] = v > drop ? e : 0;
                tot[i] += lc[k * T + i];
            }
        }
        {
            double part = 0.0;
            SIMD_SUM_PART
            for (Py_ssize_t i = 0; i < t; i++) {
                part += (double)w[i0 + i] * (double)(LOG(tot[i]) + m[i]);
                tot[i] = (REAL)1 / tot[i];
            }
            ll_sum += part;
        }
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
