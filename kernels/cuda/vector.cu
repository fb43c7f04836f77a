// Fused Krylov vector updates on flat arrays of n entries (see dcdm/kernels/reference.py).
//
// cg_update_*: x += alpha p; r -= alpha Ap; *result = r . r (new r), one pass.
// dot_*:       *result = x . y.
// xpby_*:      p = z + beta p.
// axpy_*:      y += alpha x.
//
// The sums accumulate in double (float32 inputs too) and finish in the same launch
// (grid_sum in common.cuh): launched with at most DCDM_REDUCE_BLOCKS blocks, a
// `partial` buffer of that many doubles and a zeroed `counter`, they are
// deterministic for a given n.
#include "common.cuh"

namespace dcdm {

template <typename T>
__device__ __forceinline__ void cg_update(T* __restrict__ x, T* __restrict__ r,
                                          const T* __restrict__ p, const T* __restrict__ Ap,
                                          const T alpha, const index_t n,
                                          double* __restrict__ partial,
                                          unsigned* __restrict__ counter,
                                          double* __restrict__ result) {
    double acc = 0.0;
    for (index_t t = flat_begin(); t < n; t += flat_stride()) {
        x[t] += alpha * __ldg(p + t);
        const T rt = r[t] - alpha * __ldg(Ap + t);
        r[t] = rt;
        acc += static_cast<double>(rt) * static_cast<double>(rt);
    }
    grid_sum(acc, partial, counter, result);
}

template <typename T>
__device__ __forceinline__ void dot(const T* __restrict__ x, const T* __restrict__ y,
                                    const index_t n, double* __restrict__ partial,
                                    unsigned* __restrict__ counter, double* __restrict__ result) {
    double acc = 0.0;
    for (index_t t = flat_begin(); t < n; t += flat_stride()) {
        acc += static_cast<double>(__ldg(x + t)) * static_cast<double>(__ldg(y + t));
    }
    grid_sum(acc, partial, counter, result);
}

template <typename T>
__device__ __forceinline__ void xpby(const T* __restrict__ z, const T beta, T* __restrict__ p,
                                     const index_t n) {
    for (index_t t = flat_begin(); t < n; t += flat_stride()) {
        p[t] = __ldg(z + t) + beta * p[t];
    }
}

template <typename T>
__device__ __forceinline__ void axpy(const T alpha, const T* __restrict__ x, T* __restrict__ y,
                                     const index_t n) {
    for (index_t t = flat_begin(); t < n; t += flat_stride()) {
        y[t] += alpha * __ldg(x + t);
    }
}

}  // namespace dcdm

#define DCDM_VECTOR(SUFFIX, T)                                                                \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) cg_update_##SUFFIX(              \
        T* __restrict__ x, T* __restrict__ r, const T* __restrict__ p,                        \
        const T* __restrict__ Ap, const T alpha, const dcdm::index_t n,                        \
        double* __restrict__ partial, unsigned* __restrict__ counter,                          \
        double* __restrict__ result) {                                                         \
        dcdm::cg_update<T>(x, r, p, Ap, alpha, n, partial, counter, result);                  \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) dot_##SUFFIX(                    \
        const T* __restrict__ x, const T* __restrict__ y, const dcdm::index_t n,              \
        double* __restrict__ partial, unsigned* __restrict__ counter,                          \
        double* __restrict__ result) {                                                         \
        dcdm::dot<T>(x, y, n, partial, counter, result);                                      \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) xpby_##SUFFIX(                   \
        const T* __restrict__ z, const T beta, T* __restrict__ p, const dcdm::index_t n) {    \
        dcdm::xpby<T>(z, beta, p, n);                                                         \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(DCDM_BLOCK) axpy_##SUFFIX(                   \
        const T alpha, const T* __restrict__ x, T* __restrict__ y, const dcdm::index_t n) {   \
        dcdm::axpy<T>(alpha, x, y, n);                                                        \
    }

DCDM_VECTOR(f32, float)
DCDM_VECTOR(f64, double)
