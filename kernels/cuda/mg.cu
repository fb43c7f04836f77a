// Geometric multigrid kernels on 3-D (n0, n1, n2) arrays (see dcdm/kernels/reference.py).
// Every vector vanishes off FLUID cells, so neighbour values are used without their flags.
//
// rbgs3_*:     one red-black Gauss-Seidel half-sweep over the cells with
//              (i + j + k) % 2 == color: x_c = (b_c / scale + sum of neighbours) / code_c
//              where code_c > 0 (h2 = 1 / scale is passed).
// restrict3_*: b_c = weight * sum over children of (b_f - L_f x_f) on coarse cells with
//              code_c >= 0, else 0; the fine residual is computed on the fly, once per cell.
// prolong3_*:  x_f += x_c[parent] on fine cells with code_f >= 0.
// rbgs_cells3_*: the Gauss-Seidel update of rbgs3 on a list of cells (ii, jj, kk), all of
//              one colour, so that the order does not matter.
// The coarsening factor per axis is 1 or 2, passed as a shift s (factor 1 << s).
// The *_shift kernels add a diagonal term: the operator is scale * ((code + shift) x - sum of
// neighbours) (shift >= 0, zero off FLUID cells; the plain kernels pass shift = nullptr).
// coef_*: the same on a coefficient stencil (face weights, Galerkin coarse levels; see
// common.cuh): diag_c in place of code_c (> 0: updated, >= 0: an unknown) and
// sum_n K_cn x_n in place of the neighbour sum; coef_prolong3 is prolong3 with the fine
// diag (a float) in place of code_f.
#include "common.cuh"

namespace dcdm {

// Sum of the in-domain face neighbours of cell c = (i, j, k).
template <typename T>
__device__ __forceinline__ T neighbour_sum(const T* x, const index_t c, const index_t i,
                                           const unsigned j, const unsigned k, const index_t n0,
                                           const unsigned n1, const unsigned n2) {
    const index_t plane = static_cast<index_t>(n1) * n2;
    T s = T(0);
    if (i > 0) s += x[c - plane];
    if (i + 1 < n0) s += x[c + plane];
    if (j > 0) s += x[c - n2];
    if (j + 1 < n1) s += x[c + n2];
    if (k > 0) s += x[c - 1];
    if (k + 1 < n2) s += x[c + 1];
    return s;
}

// The stencil's diagonal code_c (+ shift_c when a shift is given).
template <typename T>
__device__ __forceinline__ T diagonal(const int cc, const T* __restrict__ shift,
                                      const index_t c) {
    const T d = static_cast<T>(cc > 0 ? cc : 0);
    return shift == nullptr ? d : d + __ldg(shift + c);
}

// Thread r of the plane handles the pair of cells (j, 2 kk) and (j, 2 kk + 1) and
// updates the one of colour `color`. x is read (other colour) and written (this
// colour) in place, so it is neither const nor __restrict__.
template <typename T>
__device__ __forceinline__ void rbgs3(const signed char* __restrict__ code,
                                      const T* __restrict__ shift, T* x,
                                      const T* __restrict__ b, const T h2, const int color,
                                      const index_t n0, const unsigned n1, const unsigned n2) {
    const unsigned half = (n2 + 1) / 2;
    unsigned r, j, kk;
    if (!plane_cell(n1 * half, half, r, j, kk)) {
        return;
    }
    for (index_t i = blockIdx.y; i < n0; i += gridDim.y) {
        const unsigned k = 2 * kk + static_cast<unsigned>((i + j + color) & 1);
        if (k >= n2) {
            continue;
        }
        const index_t c = (i * n1 + j) * n2 + k;
        const int cc = __ldg(code + c);
        const T d = diagonal(cc, shift, c);
        if (cc < 0 || d <= T(0)) {
            continue;
        }
        const T s = neighbour_sum(x, c, i, j, k, n0, n1, n2);
        x[c] = (__ldg(b + c) * h2 + s) / d;
    }
}

// One thread per coarse cell (N0, N1, N2); fine grid (n0, n1, n2).
template <typename T>
__device__ __forceinline__ void restrict3(const signed char* __restrict__ code_f,
                                          const T* __restrict__ shift,
                                          const T* __restrict__ x_f, const T* __restrict__ b_f,
                                          const T scale_f, const index_t n0, const unsigned n1,
                                          const unsigned n2,
                                          const signed char* __restrict__ code_c,
                                          T* __restrict__ b_c, const index_t N0,
                                          const unsigned N1, const unsigned N2, const int s0,
                                          const int s1, const int s2, const T weight) {
    unsigned r, J, K;
    if (!plane_cell(N1 * N2, N2, r, J, K)) {
        return;
    }
    const index_t i_end = static_cast<index_t>(1) << s0;
    const unsigned j_lo = J << s1, j_hi = min(j_lo + (1u << s1), n1);
    const unsigned k_lo = K << s2, k_hi = min(k_lo + (1u << s2), n2);
    for (index_t I = blockIdx.y; I < N0; I += gridDim.y) {
        const index_t cc = I * N1 * N2 + r;
        if (__ldg(code_c + cc) < 0) {
            b_c[cc] = T(0);
            continue;
        }
        const index_t i_lo = I << s0;
        const index_t i_hi = i_lo + i_end < n0 ? i_lo + i_end : n0;
        T acc = T(0);
        for (index_t i = i_lo; i < i_hi; ++i) {
            for (unsigned j = j_lo; j < j_hi; ++j) {
                for (unsigned k = k_lo; k < k_hi; ++k) {
                    const index_t c = (i * n1 + j) * n2 + k;
                    const int cf = __ldg(code_f + c);
                    if (cf < 0) {
                        continue;
                    }
                    const T s = neighbour_sum(x_f, c, i, j, k, n0, n1, n2);
                    acc += __ldg(b_f + c) - scale_f * (diagonal(cf, shift, c) * __ldg(x_f + c) - s);
                }
            }
        }
        b_c[cc] = weight * acc;
    }
}

// One thread per fine cell (n0, n1, n2); coarse grid (N0 unused, N1, N2). code_f is the
// stencil code (C = signed char) or a coefficient stencil's diag (C = T): the test is >= 0.
template <typename T, typename C>
__device__ __forceinline__ void prolong3(const T* __restrict__ x_c,
                                         const C* __restrict__ code_f,
                                         T* __restrict__ x_f, const index_t n0, const unsigned n1,
                                         const unsigned n2, const unsigned N1, const unsigned N2,
                                         const int s0, const int s1, const int s2) {
    unsigned r, j, k;
    if (!plane_cell(n1 * n2, n2, r, j, k)) {
        return;
    }
    const index_t parent_jk = static_cast<index_t>(j >> s1) * N2 + (k >> s2);
    for (index_t i = blockIdx.y; i < n0; i += gridDim.y) {
        const index_t c = i * n1 * n2 + r;
        if (__ldg(code_f + c) >= C(0)) {
            x_f[c] += __ldg(x_c + (i >> s0) * N1 * N2 + parent_jk);
        }
    }
}

// One thread per listed cell (grid-stride).
template <typename T>
__device__ __forceinline__ void rbgs_cells3(const signed char* __restrict__ code,
                                            const T* __restrict__ shift, T* x,
                                            const T* __restrict__ b, const T h2,
                                            const index_t* __restrict__ ii,
                                            const index_t* __restrict__ jj,
                                            const index_t* __restrict__ kk, const index_t m,
                                            const index_t n0, const unsigned n1,
                                            const unsigned n2) {
    for (index_t t = flat_begin(); t < m; t += flat_stride()) {
        const index_t i = __ldg(ii + t);
        const unsigned j = static_cast<unsigned>(__ldg(jj + t));
        const unsigned k = static_cast<unsigned>(__ldg(kk + t));
        const index_t c = (i * n1 + j) * n2 + k;
        const int cc = __ldg(code + c);
        const T d = diagonal(cc, shift, c);
        if (cc >= 0 && d > T(0)) {
            const T s = neighbour_sum(x, c, i, j, k, n0, n1, n2);
            x[c] = (__ldg(b + c) * h2 + s) / d;
        }
    }
}

// rbgs3 on a coefficient stencil.
template <typename T>
__device__ __forceinline__ void coef_rbgs3(const T* __restrict__ diag, const T* __restrict__ k0,
                                           const T* __restrict__ k1, const T* __restrict__ k2,
                                           T* x, const T* __restrict__ b, const T h2,
                                           const int color, const index_t n0, const unsigned n1,
                                           const unsigned n2) {
    const unsigned half = (n2 + 1) / 2;
    unsigned r, j, kk;
    if (!plane_cell(n1 * half, half, r, j, kk)) {
        return;
    }
    for (index_t i = blockIdx.y; i < n0; i += gridDim.y) {
        const unsigned k = 2 * kk + static_cast<unsigned>((i + j + color) & 1);
        if (k >= n2) {
            continue;
        }
        const index_t c = (i * n1 + j) * n2 + k;
        const T d = __ldg(diag + c);
        if (d > T(0)) {
            x[c] = (__ldg(b + c) * h2 + coupled_sum(x, k0, k1, k2, c, i, j, k, n0, n1, n2)) / d;
        }
    }
}

// restrict3 on a coefficient stencil: one thread per coarse cell.
template <typename T>
__device__ __forceinline__ void coef_restrict3(
    const T* __restrict__ diag_f, const T* __restrict__ k0, const T* __restrict__ k1,
    const T* __restrict__ k2, const T* __restrict__ x_f, const T* __restrict__ b_f,
    const T scale_f, const index_t n0, const unsigned n1, const unsigned n2,
    const T* __restrict__ diag_c, T* __restrict__ b_c, const index_t N0, const unsigned N1,
    const unsigned N2, const int s0, const int s1, const int s2, const T weight) {
    unsigned r, J, K;
    if (!plane_cell(N1 * N2, N2, r, J, K)) {
        return;
    }
    const index_t i_end = static_cast<index_t>(1) << s0;
    const unsigned j_lo = J << s1, j_hi = min(j_lo + (1u << s1), n1);
    const unsigned k_lo = K << s2, k_hi = min(k_lo + (1u << s2), n2);
    for (index_t I = blockIdx.y; I < N0; I += gridDim.y) {
        const index_t cc = I * N1 * N2 + r;
        if (__ldg(diag_c + cc) < T(0)) {
            b_c[cc] = T(0);
            continue;
        }
        const index_t i_lo = I << s0;
        const index_t i_hi = i_lo + i_end < n0 ? i_lo + i_end : n0;
        T acc = T(0);
        for (index_t i = i_lo; i < i_hi; ++i) {
            for (unsigned j = j_lo; j < j_hi; ++j) {
                for (unsigned k = k_lo; k < k_hi; ++k) {
                    const index_t c = (i * n1 + j) * n2 + k;
                    const T d = __ldg(diag_f + c);
                    if (d < T(0)) {
                        continue;
                    }
                    const T s = coupled_sum(x_f, k0, k1, k2, c, i, j, k, n0, n1, n2);
                    acc += __ldg(b_f + c) - scale_f * (d * __ldg(x_f + c) - s);
                }
            }
        }
        b_c[cc] = weight * acc;
    }
}

// rbgs_cells3 on a coefficient stencil: one thread per listed cell (grid-stride).
template <typename T>
__device__ __forceinline__ void coef_rbgs_cells3(
    const T* __restrict__ diag, const T* __restrict__ k0, const T* __restrict__ k1,
    const T* __restrict__ k2, T* x, const T* __restrict__ b, const T h2,
    const index_t* __restrict__ ii, const index_t* __restrict__ jj,
    const index_t* __restrict__ kk, const index_t m, const index_t n0, const unsigned n1,
    const unsigned n2) {
    for (index_t t = flat_begin(); t < m; t += flat_stride()) {
        const index_t i = __ldg(ii + t);
        const unsigned j = static_cast<unsigned>(__ldg(jj + t));
        const unsigned k = static_cast<unsigned>(__ldg(kk + t));
        const index_t c = (i * n1 + j) * n2 + k;
        const T d = __ldg(diag + c);
        if (d > T(0)) {
            x[c] = (__ldg(b + c) * h2 + coupled_sum(x, k0, k1, k2, c, i, j, k, n0, n1, n2)) / d;
        }
    }
}

}  // namespace dcdm

#define DCDM_MG(SUFFIX, T)                                                                    \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) rbgs3_##SUFFIX(                  \
        const signed char* __restrict__ code, T* x, const T* __restrict__ b, const T h2,      \
        const int color, const dcdm::index_t n0, const unsigned n1, const unsigned n2) {       \
        dcdm::rbgs3<T>(code, nullptr, x, b, h2, color, n0, n1, n2);                           \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) rbgs3_shift_##SUFFIX(            \
        const signed char* __restrict__ code, const T* __restrict__ shift, T* x,              \
        const T* __restrict__ b, const T h2, const int color, const dcdm::index_t n0,         \
        const unsigned n1, const unsigned n2) {                                                \
        dcdm::rbgs3<T>(code, shift, x, b, h2, color, n0, n1, n2);                             \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) restrict3_##SUFFIX(              \
        const signed char* __restrict__ code_f, const T* __restrict__ x_f,                     \
        const T* __restrict__ b_f, const T scale_f, const dcdm::index_t n0, const unsigned n1, \
        const unsigned n2, const signed char* __restrict__ code_c, T* __restrict__ b_c,        \
        const dcdm::index_t N0, const unsigned N1, const unsigned N2, const int s0,            \
        const int s1, const int s2, const T weight) {                                          \
        dcdm::restrict3<T>(code_f, nullptr, x_f, b_f, scale_f, n0, n1, n2, code_c, b_c, N0,   \
                           N1, N2, s0, s1, s2, weight);                                        \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) restrict3_shift_##SUFFIX(        \
        const signed char* __restrict__ code_f, const T* __restrict__ shift,                   \
        const T* __restrict__ x_f, const T* __restrict__ b_f, const T scale_f,                 \
        const dcdm::index_t n0, const unsigned n1, const unsigned n2,                          \
        const signed char* __restrict__ code_c, T* __restrict__ b_c, const dcdm::index_t N0,   \
        const unsigned N1, const unsigned N2, const int s0, const int s1, const int s2,        \
        const T weight) {                                                                      \
        dcdm::restrict3<T>(code_f, shift, x_f, b_f, scale_f, n0, n1, n2, code_c, b_c, N0, N1, \
                           N2, s0, s1, s2, weight);                                            \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) prolong3_##SUFFIX(               \
        const T* __restrict__ x_c, const signed char* __restrict__ code_f,                    \
        T* __restrict__ x_f, const dcdm::index_t n0, const unsigned n1, const unsigned n2,     \
        const unsigned N1, const unsigned N2, const int s0, const int s1, const int s2) {      \
        dcdm::prolong3<T, signed char>(x_c, code_f, x_f, n0, n1, n2, N1, N2, s0, s1, s2);     \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) rbgs_cells3_##SUFFIX(            \
        const signed char* __restrict__ code, T* x, const T* __restrict__ b, const T h2,      \
        const dcdm::index_t* __restrict__ ii, const dcdm::index_t* __restrict__ jj,            \
        const dcdm::index_t* __restrict__ kk, const dcdm::index_t m, const dcdm::index_t n0,   \
        const unsigned n1, const unsigned n2) {                                                \
        dcdm::rbgs_cells3<T>(code, nullptr, x, b, h2, ii, jj, kk, m, n0, n1, n2);             \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) rbgs_cells3_shift_##SUFFIX(      \
        const signed char* __restrict__ code, const T* __restrict__ shift, T* x,              \
        const T* __restrict__ b, const T h2, const dcdm::index_t* __restrict__ ii,            \
        const dcdm::index_t* __restrict__ jj, const dcdm::index_t* __restrict__ kk,           \
        const dcdm::index_t m, const dcdm::index_t n0, const unsigned n1, const unsigned n2) { \
        dcdm::rbgs_cells3<T>(code, shift, x, b, h2, ii, jj, kk, m, n0, n1, n2);               \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) coef_rbgs3_##SUFFIX(             \
        DCDM_COEF_PARAMS(T), T* x, const T* __restrict__ b, const T h2, const int color,      \
        const dcdm::index_t n0, const unsigned n1, const unsigned n2) {                        \
        dcdm::coef_rbgs3<T>(diag, k0, k1, k2, x, b, h2, color, n0, n1, n2);                   \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) coef_restrict3_##SUFFIX(         \
        DCDM_COEF_PARAMS(T), const T* __restrict__ x_f, const T* __restrict__ b_f,            \
        const T scale_f, const dcdm::index_t n0, const unsigned n1, const unsigned n2,         \
        const T* __restrict__ diag_c, T* __restrict__ b_c, const dcdm::index_t N0,             \
        const unsigned N1, const unsigned N2, const int s0, const int s1, const int s2,        \
        const T weight) {                                                                      \
        dcdm::coef_restrict3<T>(diag, k0, k1, k2, x_f, b_f, scale_f, n0, n1, n2, diag_c, b_c, \
                                N0, N1, N2, s0, s1, s2, weight);                               \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) coef_prolong3_##SUFFIX(          \
        const T* __restrict__ x_c, const T* __restrict__ diag_f, T* __restrict__ x_f,         \
        const dcdm::index_t n0, const unsigned n1, const unsigned n2, const unsigned N1,       \
        const unsigned N2, const int s0, const int s1, const int s2) {                         \
        dcdm::prolong3<T, T>(x_c, diag_f, x_f, n0, n1, n2, N1, N2, s0, s1, s2);               \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) coef_rbgs_cells3_##SUFFIX(       \
        DCDM_COEF_PARAMS(T), T* x, const T* __restrict__ b, const T h2,                       \
        const dcdm::index_t* __restrict__ ii, const dcdm::index_t* __restrict__ jj,            \
        const dcdm::index_t* __restrict__ kk, const dcdm::index_t m, const dcdm::index_t n0,   \
        const unsigned n1, const unsigned n2) {                                                \
        dcdm::coef_rbgs_cells3<T>(diag, k0, k1, k2, x, b, h2, ii, jj, kk, m, n0, n1, n2);     \
    }

DCDM_MG(f32, float)
DCDM_MG(f64, double)
