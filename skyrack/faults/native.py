"""The ABFT checks of CPU float32 products as one pass in C, and the integrity fingerprint of 32-bit
words in one call, compiled on this machine at first use.

In torch eager a row-checksum check of out = a @ b is four or five separate kernels: the output's
row sums, its row norms, a @ (b's row sums), and the operations between them. Each reads its
operand from memory again, and on a small CPU model those passes cost as much as a tenth of the
GEMMs they check. Here one loop reads each row of `out` and of `a` once and keeps only the worst
ratio; the grad-weight product (out = x^T g, a transposed operand) is checked in one pass over the
rows of x and g, by the rows of x^T g (autograd's layout, g^T x, is checked by its columns: the
same sums). A training layer's three products are checked in two passes (`row_stats` on the
forward output, then `abft_linear_backward`, which reads x and g once for all three). The check
is `gemm.Abft`'s torch one (the same row sums and rounding scale; the sums kept in float lanes
and combined in double), and the torch path stays for CUDA, other dtypes and strided operands.

The source is compiled with the system C compiler (`cc`, or `$CC`) for this CPU (-march=native),
with OpenMP so that it splits rows across the threads torch computes with (torch's own libgomp,
already loaded, serves it). The library is cached under the user cache directory, keyed by the
source, the compiler and the CPU; it is written atomically, so concurrent first uses are safe.
Without a compiler, or if it fails, `kernels()` returns None once and says why, and the checks run
on torch.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = r"""
#include <math.h>
#include <stdlib.h>

#define BLOCK 16  /* rows summed in float before their sums join a double accumulator */

/* Sums of a float row: plain sum, sum of squares, dot with v. AVX2 (two accumulators each, to
   hide the add latency) where the compiler targets it; portable loops elsewhere. Written out by
   hand: GCC's own vectorization of the portable loops ran ~6x slower here. */
#ifdef __AVX2__
#include <immintrin.h>
static double hsum(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128d d = _mm_add_pd(_mm_cvtps_pd(lo), _mm_cvtps_pd(_mm_movehl_ps(lo, lo)));
    return _mm_cvtsd_f64(d) + _mm_cvtsd_f64(_mm_unpackhi_pd(d, d));
}
static void sum_sumsq(const float *o, long n, double *sum, double *sumsq) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 e = _mm256_loadu_ps(o + j), f = _mm256_loadu_ps(o + j + 8);
        s0 = _mm256_add_ps(s0, e); s1 = _mm256_add_ps(s1, f);
        q0 = _mm256_fmadd_ps(e, e, q0); q1 = _mm256_fmadd_ps(f, f, q1);
    }
    double s = hsum(_mm256_add_ps(s0, s1)), q = hsum(_mm256_add_ps(q0, q1));
    for (; j < n; j++) { s += o[j]; q += (double)o[j] * o[j]; }
    *sum = s; *sumsq = q;
}
static double dot(const float *x, const float *v, long k) {
    __m256 d0 = _mm256_setzero_ps(), d1 = d0;
    long j = 0;
    for (; j + 16 <= k; j += 16) {
        d0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(v + j), d0);
        d1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 8), _mm256_loadu_ps(v + j + 8), d1);
    }
    double d = hsum(_mm256_add_ps(d0, d1));
    for (; j < k; j++) d += (double)x[j] * v[j];
    return d;
}
static void axpy_float(float *acc, float t, const float *x, long k) {
    __m256 tt = _mm256_set1_ps(t);
    long j = 0;
    for (; j + 8 <= k; j += 8)
        _mm256_storeu_ps(acc + j, _mm256_fmadd_ps(tt, _mm256_loadu_ps(x + j), _mm256_loadu_ps(acc + j)));
    for (; j < k; j++) acc[j] += t * x[j];
}
static void axpy_double(double *acc, double t, const float *x, long k) {
    __m256d tt = _mm256_set1_pd(t);
    long j = 0;
    for (; j + 4 <= k; j += 4)
        _mm256_storeu_pd(acc + j, _mm256_fmadd_pd(tt, _mm256_cvtps_pd(_mm_loadu_ps(x + j)), _mm256_loadu_pd(acc + j)));
    for (; j < k; j++) acc[j] += t * x[j];
}
static void square_axpy_double(double *acc, const float *x, long k) {
    long j = 0;
    for (; j + 4 <= k; j += 4) {
        __m256d e = _mm256_cvtps_pd(_mm_loadu_ps(x + j));
        _mm256_storeu_pd(acc + j, _mm256_fmadd_pd(e, e, _mm256_loadu_pd(acc + j)));
    }
    for (; j < k; j++) acc[j] += (double)x[j] * x[j];
}
/* The fused pairs of a layer's backward check: one read of a row for two of its sums. */
static void sum_dot(const float *x, const float *v, long n, double *sum, double *d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, d0 = s0, d1 = s0;
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 e = _mm256_loadu_ps(x + j), f = _mm256_loadu_ps(x + j + 8);
        s0 = _mm256_add_ps(s0, e); s1 = _mm256_add_ps(s1, f);
        d0 = _mm256_fmadd_ps(e, _mm256_loadu_ps(v + j), d0);
        d1 = _mm256_fmadd_ps(f, _mm256_loadu_ps(v + j + 8), d1);
    }
    double a = hsum(_mm256_add_ps(s0, s1)), b = hsum(_mm256_add_ps(d0, d1));
    for (; j < n; j++) { a += x[j]; b += (double)x[j] * v[j]; }
    *sum = a; *d = b;
}
static double dot_axpy(const float *x, const float *v, float t, float *acc, long k) {
    __m256 d0 = _mm256_setzero_ps(), d1 = d0, tt = _mm256_set1_ps(t);
    long j = 0;
    for (; j + 16 <= k; j += 16) {
        __m256 e = _mm256_loadu_ps(x + j), f = _mm256_loadu_ps(x + j + 8);
        d0 = _mm256_fmadd_ps(e, _mm256_loadu_ps(v + j), d0);
        d1 = _mm256_fmadd_ps(f, _mm256_loadu_ps(v + j + 8), d1);
        _mm256_storeu_ps(acc + j, _mm256_fmadd_ps(tt, e, _mm256_loadu_ps(acc + j)));
        _mm256_storeu_ps(acc + j + 8, _mm256_fmadd_ps(tt, f, _mm256_loadu_ps(acc + j + 8)));
    }
    for (; j + 8 <= k; j += 8) {
        __m256 e = _mm256_loadu_ps(x + j);
        d0 = _mm256_fmadd_ps(e, _mm256_loadu_ps(v + j), d0);
        _mm256_storeu_ps(acc + j, _mm256_fmadd_ps(tt, e, _mm256_loadu_ps(acc + j)));
    }
    double d = hsum(_mm256_add_ps(d0, d1));
    for (; j < k; j++) { d += (double)x[j] * v[j]; acc[j] += t * x[j]; }
    return d;
}
#else
static void sum_sumsq(const float *o, long n, double *sum, double *sumsq) {
    float s[8] = {0}, q[8] = {0};
    long j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) { s[l] += o[j + l]; q[l] += o[j + l] * o[j + l]; }
    double a = 0, b = 0;
    for (int l = 0; l < 8; l++) { a += s[l]; b += q[l]; }
    for (; j < n; j++) { a += o[j]; b += (double)o[j] * o[j]; }
    *sum = a; *sumsq = b;
}
static double dot(const float *x, const float *v, long k) {
    float d[8] = {0};
    long j = 0;
    for (; j + 8 <= k; j += 8)
        for (int l = 0; l < 8; l++) d[l] += x[j + l] * v[j + l];
    double a = 0;
    for (int l = 0; l < 8; l++) a += d[l];
    for (; j < k; j++) a += (double)x[j] * v[j];
    return a;
}
static void axpy_float(float *acc, float t, const float *x, long k) {
    for (long j = 0; j < k; j++) acc[j] += t * x[j];
}
static void axpy_double(double *acc, double t, const float *x, long k) {
    for (long j = 0; j < k; j++) acc[j] += t * x[j];
}
static void square_axpy_double(double *acc, const float *x, long k) {
    for (long j = 0; j < k; j++) acc[j] += (double)x[j] * x[j];
}
static void sum_dot(const float *x, const float *v, long n, double *sum, double *d) {
    double unused;
    sum_sumsq(x, n, sum, &unused);
    *d = dot(x, v, n);
}
static double dot_axpy(const float *x, const float *v, float t, float *acc, long k) {
    axpy_float(acc, t, x, k);
    return dot(x, v, k);
}
#endif

/* A row's residual against its rounding scale; anything not finite (a NaN or an overflowed
   element anywhere in the row) is a fault. */
static float row_ratio(double sum, double expect, double sumsq) {
    double norm = sqrt(sumsq);
    double r = fabs(sum - expect) / (norm > 1.1754943508222875e-38 ? norm : 1.1754943508222875e-38);
    if (!(r <= 3.4e38) || !(norm <= 3.4e38)) return INFINITY;
    return (float)r;
}

/* out (m x n) = a (m x k) @ b, both row-major and contiguous; v (k) = b's row sums.
   Returns max over rows of |sum(out_i) - a_i . v| / ||out_i||_2. */
float abft_rows(const float *out, const float *a, const float *v, long m, long n, long k, int threads) {
    float worst = 0.0f;
    #pragma omp parallel for num_threads(threads) schedule(static) reduction(max:worst)
    for (long i = 0; i < m; i++) {
        double sum, sumsq;
        sum_sumsq(out + i * n, n, &sum, &sumsq);
        float r = row_ratio(sum, dot(a + i * k, v, k), sumsq);
        if (r > worst) worst = r;
    }
    return worst;
}

/* b's row sums from W (row-major, contiguous), in double: for b = W^T (forward, W n x k) the
   column sums of W, for b = W (grad-input, W k x n) its row sums. NULL if out of memory. */
static float *weight_sums(const float *w, long n, long k, int transposed) {
    double *vd = calloc((size_t)k, sizeof(double));
    float *v = malloc((size_t)k * sizeof(float));
    if (vd && v) {
        if (transposed) for (long c = 0; c < n; c++) axpy_double(vd, 1.0, w + c * k, k);
        else for (long j = 0; j < k; j++) { double sq; sum_sumsq(w + j * n, n, vd + j, &sq); }
        for (long j = 0; j < k; j++) v[j] = (float)vd[j];
    } else { free(v); v = NULL; }
    free(vd);
    return v;
}

/* The row check of a linear layer's forward (out = a @ W^T, W n x k; `transposed`) or grad-input
   (out = a @ W, W k x n) product, b's row sums computed here from W. */
float abft_rows_w(const float *out, const float *a, const float *w, long m, long n, long k, int transposed, int threads) {
    float *v = weight_sums(w, n, k, transposed);
    if (!v) return INFINITY;
    float worst = abft_rows(out, a, v, m, n, k, threads);
    free(v);
    return worst;
}

/* The integrity fingerprint (bits.word_sums) of `count` tensors of 32-bit words: each tensor's
   words summed modulo 2^32 (unsigned arithmetic wraps by definition), one call for all of them,
   where torch takes a dispatch and a slower integer reduction per tensor. */
void word_sums32(const unsigned int *const *ptrs, const long *lens, long count, unsigned int *out) {
    for (long t = 0; t < count; t++) {
        const unsigned int *p = ptrs[t];
        unsigned int acc[8] = {0};
        long i = 0, n = lens[t];
        for (; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += p[i + l];
        unsigned int s = 0;
        for (int l = 0; l < 8; l++) s += acc[l];
        for (; i < n; i++) s += p[i];
        out[t] = s;
    }
}

/* out (k x n) = x^T (k x m) @ g (m x n), x (m x k) and g (m x n) row-major and contiguous, out
   contiguous. Row check of out: sum_c out[j][c] against sum_r x[r][j] * (sum_c g[r][c]), the
   right side accumulated over the rows of x and g in one pass: in float over blocks of BLOCK
   rows, each block's sums then added in double (per thread). */
float abft_outer(const float *out, const float *x, const float *g, long m, long k, long n, int threads) {
    double *expect = calloc((size_t)k, sizeof(double));
    int failed = expect == NULL;
    if (!failed) {
        #pragma omp parallel num_threads(threads)
        {
            double *acc = calloc((size_t)k, sizeof(double));
            float *block = calloc((size_t)k, sizeof(float));
            #pragma omp for schedule(static)
            for (long r0 = 0; r0 < m; r0 += BLOCK) {
                if (!acc || !block) continue;
                for (long j = 0; j < k; j++) block[j] = 0.0f;
                for (long r = r0; r < r0 + BLOCK && r < m; r++) {
                    double t, unused;
                    sum_sumsq(g + r * n, n, &t, &unused);
                    axpy_float(block, (float)t, x + r * k, k);
                }
                for (long j = 0; j < k; j++) acc[j] += block[j];
            }
            int missing = !acc || !block;
            free(block);
            #pragma omp critical
            {
                if (!missing) for (long j = 0; j < k; j++) expect[j] += acc[j];
                else failed = 1;
            }
            free(acc);
        }
    }
    float worst = failed ? INFINITY : 0.0f;
    for (long j = 0; j < k && !failed; j++) {
        double sum, sumsq;
        sum_sumsq(out + j * n, n, &sum, &sumsq);
        float r = row_ratio(sum, expect[j], sumsq);
        if (r > worst) worst = r;
    }
    free(expect);
    return worst;
}

/* A linear layer's forward output y (m x n), its rows' sums and sums of squares: the half of its
   row check that needs y, taken as soon as y exists; the other half (x . W's column sums) is
   taken in the layer's backward, where x is read anyway (abft_linear_backward). */
void row_stats(const float *out, long m, long n, double *sums, double *sumsq, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < m; i++) sum_sumsq(out + i * n, n, sums + i, sumsq + i);
}

/* The forward's row check finished without a backward: max over rows of
   |sums_i - x_i . (W's column sums)| / sqrt(sumsq_i), W n x k. */
float abft_forward_finish(const double *sums, const double *sumsq, const float *x, const float *w,
                          long m, long n, long k, int threads) {
    float *v = weight_sums(w, n, k, 1);
    if (!v) return INFINITY;
    float worst = 0.0f;
    #pragma omp parallel for num_threads(threads) schedule(static) reduction(max:worst)
    for (long i = 0; i < m; i++) {
        float r = row_ratio(sums[i], dot(x + i * k, v, k), sumsq[i]);
        if (r > worst) worst = r;
    }
    free(v);
    return worst;
}

/* All of one linear layer's row checks in its backward, one pass over the rows of x (m x k) and
   g = grad_y (m x n), with W (n x k); all contiguous:
     forward     y = x W^T : the row stats of y (fsums, fsumsq) against x . (W's column sums),
     grad-input  gx = g W  : gx's rows (m x k) against g . (W's row sums),
     grad-weight gw = g^T x: the rows of gw^T = x^T g, i.e. gw's columns (k of them), against
                             x^T (g's row sums), as abft_outer checks x^T g. (gw's own rows sum
                             over the inputs, terms that cancel: that check false-alarms.)
   Each part is skipped where its pointer is NULL. ratios[0..2]: the worst row of each. A row of g
   gives its sum and its dot with W's row sums together, a row of x its dot with W's column sums
   and its share of x^T (g's row sums) together; checked one by one, the three products read x
   twice and g twice. */
void abft_linear_backward(const float *x, const float *w, const float *g, const float *gx, const float *gw,
                          const double *fsums, const double *fsumsq, long m, long k, long n, int threads,
                          float *ratios) {
    float *vf = fsums ? weight_sums(w, n, k, 1) : NULL;  /* W's column sums (k) */
    float *vg = gx ? weight_sums(w, k, n, 0) : NULL;     /* W's row sums (n) */
    double *expect = gw ? calloc((size_t)k, sizeof(double)) : NULL;
    double *csum = gw ? calloc((size_t)k, sizeof(double)) : NULL, *csq = gw ? calloc((size_t)k, sizeof(double)) : NULL;
    float wf = 0.0f, wg = 0.0f;
    int failed = (fsums && !vf) || (gx && !vg) || (gw && (!expect || !csum || !csq));
    if (!failed) {
        #pragma omp parallel num_threads(threads) reduction(max:wf, wg)
        {
            double *acc = gw ? calloc((size_t)k, sizeof(double)) : NULL;
            float *block = gw ? calloc((size_t)k, sizeof(float)) : NULL;
            int missing = gw && (!acc || !block);
            #pragma omp for schedule(static)
            for (long r0 = 0; r0 < m; r0 += BLOCK) {
                if (missing) continue;
                if (gw) for (long j = 0; j < k; j++) block[j] = 0.0f;
                for (long r = r0; r < r0 + BLOCK && r < m; r++) {
                    const float *xr = x + r * k, *gr = g + r * n;
                    double t = 0.0, dg = 0.0, df = 0.0, unused;  /* g's row sum, g . vg, x . vf */
                    if (gx && gw) sum_dot(gr, vg, n, &t, &dg);
                    else if (gx) dg = dot(gr, vg, n);
                    else if (gw) sum_sumsq(gr, n, &t, &unused);
                    if (fsums && gw) df = dot_axpy(xr, vf, (float)t, block, k);
                    else if (fsums) df = dot(xr, vf, k);
                    else if (gw) axpy_float(block, (float)t, xr, k);
                    if (fsums) {
                        float q = row_ratio(fsums[r], df, fsumsq[r]);
                        if (q > wf) wf = q;
                    }
                    if (gx) {
                        double sum, sumsq;
                        sum_sumsq(gx + r * k, k, &sum, &sumsq);
                        float q = row_ratio(sum, dg, sumsq);
                        if (q > wg) wg = q;
                    }
                }
                if (gw) for (long j = 0; j < k; j++) acc[j] += block[j];
            }
            free(block);
            #pragma omp critical
            {
                if (missing) failed = 1;
                else if (gw) for (long j = 0; j < k; j++) expect[j] += acc[j];
            }
            free(acc);
        }
    }
    float ww = 0.0f;
    if (gw && !failed) {
        for (long c = 0; c < n; c++) {  /* gw's rows, summed into its column sums */
            axpy_double(csum, 1.0, gw + c * k, k);
            square_axpy_double(csq, gw + c * k, k);
        }
        for (long j = 0; j < k; j++) {
            float q = row_ratio(csum[j], expect[j], csq[j]);
            if (q > ww) ww = q;
        }
    }
    ratios[0] = failed ? INFINITY : wf;
    ratios[1] = failed ? INFINITY : wg;
    ratios[2] = failed ? INFINITY : ww;
    free(vf); free(vg); free(expect); free(csum); free(csq);
}
"""

# -O3 vectorizes the fixed-width lane loops; no -ffast-math, which would let the compiler assume
# that no NaN or infinity occurs, exactly what a check for corrupted values must see.
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]


class Kernels:
    def __init__(self, lib: ctypes.CDLL, path: Path):
        self.path = path
        fp, i64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        self.rows = lib.abft_rows
        self.rows.argtypes = [fp, fp, fp, i64, i64, i64, i32]
        self.rows.restype = ctypes.c_float
        self.rows_w = lib.abft_rows_w
        self.rows_w.argtypes = [fp, fp, fp, i64, i64, i64, i32, i32]
        self.rows_w.restype = ctypes.c_float
        self.word_sums32 = lib.word_sums32
        self.word_sums32.argtypes = [fp, fp, i64, fp]
        self.word_sums32.restype = None
        self.outer = lib.abft_outer
        self.outer.argtypes = [fp, fp, fp, i64, i64, i64, i32]
        self.outer.restype = ctypes.c_float
        self.row_stats = lib.row_stats
        self.row_stats.argtypes = [fp, i64, i64, fp, fp, i32]
        self.row_stats.restype = None
        self.forward_finish = lib.abft_forward_finish
        self.forward_finish.argtypes = [fp, fp, fp, fp, i64, i64, i64, i32]
        self.forward_finish.restype = ctypes.c_float
        self.linear_backward = lib.abft_linear_backward
        self.linear_backward.argtypes = [fp, fp, fp, fp, fp, fp, fp, i64, i64, i64, i32, fp]
        self.linear_backward.restype = None


def _compiler() -> str | None:
    cc = os.environ.get("CC") or "cc"
    return shutil.which(cc)


def _cpu_key() -> str:
    from skyrack.train.hardware import cpu_info

    info = cpu_info()
    return f"{info.model}|{sorted(info.flags)}"


def build(cache: Path, cc: str) -> Path:
    """Compile SOURCE into `cache` (if not there yet) and return the library's path."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256("\n".join([SOURCE, " ".join(FLAGS), version, _cpu_key()]).encode()).hexdigest()[:16]
    path = cache / f"abft-{key}.so"
    if path.is_file():
        return path
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src = Path(tmp, "abft.c")
        src.write_text(SOURCE)
        out = Path(tmp, "abft.so")
        done = subprocess.run(
            [cc, *FLAGS, str(src), "-o", str(out), "-lm"], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
        os.replace(out, path)  # atomic: a concurrent first use finds the whole library or none
    return path


def _say(message: str) -> None:
    print(message, file=sys.stderr)


@functools.cache
def kernels(say=_say) -> Kernels | None:
    """The compiled checks, or None (said once) when they cannot be built here."""
    if os.environ.get("SKYRACK_ABFT_NATIVE", "1") == "0":
        return None
    cc = _compiler()
    if cc is None:
        say("abft: no C compiler found; the checks run on torch (slower on CPU)")
        return None
    from skyrack.sources.cache import cache_dir

    try:
        path = build(cache_dir("native"), cc)
        return Kernels(ctypes.CDLL(str(path)), path)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        say(f"abft: the C checks could not be built ({exc}); the checks run on torch (slower on CPU)")
        return None
