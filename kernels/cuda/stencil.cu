// Stencil mat-vecs of the masked 5/7-point Laplacian (see dcdm/kernels/reference.py).
//
// laplacian2_* / laplacian3_*: out = L x for any x, reading the padded flags `fp`
//   of the cell and its face neighbours: a FLUID cell's row is
//   scale * (d * x_c - sum of x over FLUID neighbours), d = number of non-SOLID
//   neighbours; a non-FLUID cell's row is the identity.
// fluid3_*: out = L x for x that vanishes off FLUID cells, from the stencil code
//   alone: scale * (code * x_c - sum of in-domain neighbours) where code >= 0,
//   else 0. 2-D grids use it as (1, n0, n1) or (n0, n1, 1) arrays.
// coef3_*: out = L x for a coefficient stencil (face weights; see common.cuh):
//   scale * (diag_c x_c - sum_n K_cn x_n) where diag_c >= 0, x_c where diag_c < 0 (any x).
//   2-D grids as fluid3.
#include "common.cuh"

namespace dcdm {

// Account for one neighbour: flag `f`, value x[n] (read only for a FLUID
// neighbour, which always lies inside the domain because the padding never is FLUID).
template <typename T>
__device__ __forceinline__ void masked_term(const signed char f, const T* __restrict__ x,
                                            const index_t n, int& d, T& s) {
    if (f != SOLID) {
        ++d;
        if (f == FLUID) {
            s += __ldg(x + n);
        }
    }
}

// Row c of the masked Laplacian applied to x: q is the cell's index in the padded
// flags; per axis a, fs[a] and xs[a] are the strides of its face neighbours in the
// padded flags and in x (the terms are summed axis by axis, the - neighbour first).
template <typename T, int D>
__device__ __forceinline__ T masked_row(const signed char* __restrict__ fp,
                                        const T* __restrict__ x, const index_t c,
                                        const index_t q, const index_t (&fs)[D],
                                        const index_t (&xs)[D], const T scale) {
    const T xc = __ldg(x + c);
    if (__ldg(fp + q) != FLUID) {
        return xc;
    }
    int d = 0;
    T s = T(0);
#pragma unroll
    for (int a = 0; a < D; ++a) {
        masked_term(__ldg(fp + q - fs[a]), x, c - xs[a], d, s);
        masked_term(__ldg(fp + q + fs[a]), x, c + xs[a], d, s);
    }
    return scale * (static_cast<T>(d) * xc - s);
}

// 2-D: the cells row * plane + r (r < plane, plane a multiple of n1); the wrapper
// passes plane = n0 * n1 (one row) when that fits 32 bits, else plane = n1.
template <typename T>
__device__ __forceinline__ void laplacian2(const signed char* __restrict__ fp,
                                           const T* __restrict__ x, T* __restrict__ out,
                                           const index_t rows, const unsigned plane,
                                           const unsigned n1, const T scale) {
    unsigned r, ii, j;
    if (!plane_cell(plane, n1, r, ii, j)) {
        return;
    }
    const index_t p1 = static_cast<index_t>(n1) + 2;  // padded row length
    const index_t rows_per_plane = plane / n1;
    const index_t fs[2] = {p1, 1};
    const index_t xs[2] = {n1, 1};
    for (index_t row = blockIdx.y; row < rows; row += gridDim.y) {
        const index_t i = row * rows_per_plane + ii;
        const index_t c = i * n1 + j;
        const index_t q = (i + 1) * p1 + (j + 1);
        out[c] = masked_row(fp, x, c, q, fs, xs, scale);
    }
}

// 3-D: blockIdx.x covers the i-plane (n1 * n2 < 2^32 cells), blockIdx.y strides over i.
template <typename T>
__device__ __forceinline__ void laplacian3(const signed char* __restrict__ fp,
                                           const T* __restrict__ x, T* __restrict__ out,
                                           const index_t n0, const unsigned n1,
                                           const unsigned n2, const T scale) {
    const unsigned plane = n1 * n2;
    unsigned r, j, k;
    if (!plane_cell(plane, n2, r, j, k)) {
        return;
    }
    const index_t p2 = static_cast<index_t>(n2) + 2;  // padded strides
    const index_t p12 = (static_cast<index_t>(n1) + 2) * p2;
    const index_t fs[3] = {p12, p2, 1};
    const index_t xs[3] = {plane, n2, 1};
    for (index_t i = blockIdx.y; i < n0; i += gridDim.y) {
        const index_t c = i * plane + r;
        const index_t q = (i + 1) * p12 + (j + 1) * p2 + (k + 1);
        out[c] = masked_row(fp, x, c, q, fs, xs, scale);
    }
}

template <typename T>
__device__ __forceinline__ void fluid3(const signed char* __restrict__ code,
                                       const T* __restrict__ x, T* __restrict__ out,
                                       const index_t n0, const unsigned n1, const unsigned n2,
                                       const T scale) {
    const unsigned plane = n1 * n2;
    unsigned r, j, k;
    if (!plane_cell(plane, n2, r, j, k)) {
        return;
    }
    for (index_t i = blockIdx.y; i < n0; i += gridDim.y) {
        const index_t c = i * plane + r;
        const int cc = __ldg(code + c);
        if (cc < 0) {
            out[c] = T(0);
            continue;
        }
        T s = T(0);
        if (i > 0) s += __ldg(x + c - plane);
        if (i + 1 < n0) s += __ldg(x + c + plane);
        if (j > 0) s += __ldg(x + c - n2);
        if (j + 1 < n1) s += __ldg(x + c + n2);
        if (k > 0) s += __ldg(x + c - 1);
        if (k + 1 < n2) s += __ldg(x + c + 1);
        out[c] = scale * (static_cast<T>(cc) * __ldg(x + c) - s);
    }
}

template <typename T>
__device__ __forceinline__ void coef3(const T* __restrict__ diag, const T* __restrict__ k0,
                                      const T* __restrict__ k1, const T* __restrict__ k2,
                                      const T* __restrict__ x, T* __restrict__ out,
                                      const index_t n0, const unsigned n1, const unsigned n2,
                                      const T scale) {
    const unsigned plane = n1 * n2;
    unsigned r, j, k;
    if (!plane_cell(plane, n2, r, j, k)) {
        return;
    }
    for (index_t i = blockIdx.y; i < n0; i += gridDim.y) {
        const index_t c = i * plane + r;
        const T d = __ldg(diag + c);
        const T xc = __ldg(x + c);
        out[c] = d < T(0) ? xc
                          : scale * (d * xc - coupled_sum(x, k0, k1, k2, c, i, j, k, n0, n1, n2));
    }
}

}  // namespace dcdm

#define DCDM_STENCIL(SUFFIX, T)                                                               \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) laplacian2_##SUFFIX(             \
        const signed char* __restrict__ fp, const T* __restrict__ x, T* __restrict__ out,      \
        const dcdm::index_t rows, const unsigned plane, const unsigned n1, const T scale) {    \
        dcdm::laplacian2<T>(fp, x, out, rows, plane, n1, scale);                              \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) laplacian3_##SUFFIX(             \
        const signed char* __restrict__ fp, const T* __restrict__ x, T* __restrict__ out,      \
        const dcdm::index_t n0, const unsigned n1, const unsigned n2, const T scale) {         \
        dcdm::laplacian3<T>(fp, x, out, n0, n1, n2, scale);                                   \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) fluid3_##SUFFIX(                 \
        const signed char* __restrict__ code, const T* __restrict__ x, T* __restrict__ out,    \
        const dcdm::index_t n0, const unsigned n1, const unsigned n2, const T scale) {         \
        dcdm::fluid3<T>(code, x, out, n0, n1, n2, scale);                                     \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) coef3_##SUFFIX(                  \
        DCDM_COEF_PARAMS(T), const T* __restrict__ x, T* __restrict__ out,                    \
        const dcdm::index_t n0, const unsigned n1, const unsigned n2, const T scale) {         \
        dcdm::coef3<T>(diag, k0, k1, k2, x, out, n0, n1, n2, scale);                          \
    }

DCDM_STENCIL(f32, float)
DCDM_STENCIL(f64, double)
