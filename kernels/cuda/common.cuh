// Shared definitions of the dcdm CUDA kernels (included by every .cu file).
//
// No standard header is included: the same text compiles under nvcc (the CMake
// ahead-of-time build) and under NVRTC (dcdm.kernels.cuda_loader compiles it at
// run time when no fatbin is found), and NVRTC has no host headers.
//
// The cell codes are defined once, in dcdm/kernels/codes.py: both builds pass them
// as -DDCDM_FLUID=... -DDCDM_SOLID=... -DDCDM_AIR=... (CMakeLists.txt reads codes.py,
// the NVRTC loader takes dcdm.kernels.codes), and this header refuses to compile
// without them.
//
// Conventions, mirroring dcdm/kernels/reference.py:
//  * grids are C-order 2-D (n0, n1) or 3-D (n0, n1, n2) arrays;
//  * `fp` holds the int8 cell flags padded by one cell of the domain boundary
//    type on every side; `code` is the int8 stencil code (diagonal count on
//    FLUID cells, -1 elsewhere);
//  * cell indices are 64-bit; the index inside one i-plane (n1 * n2 cells) is
//    32-bit, which the Python wrappers check.
//  * a coefficient stencil (face weights) is a float `diag` (-1 on identity rows)
//    and one coupling array per axis, k_a[c] linking cells c and c + e_a
//    (dcdm.kernels.stencil.face_coefficients); the kernels take k0, k1, k2 (a 2-D
//    grid passes any array for the coupling of its size-1 axis: it is never read).
//
// Launch geometry of the stencil kernels: 1-D blocks of DCDM_BLOCK threads,
// blockIdx.x covers one i-plane (consecutive threads take consecutive
// addresses), blockIdx.y strides over the planes.
#ifndef DCDM_COMMON_CUH
#define DCDM_COMMON_CUH

#define DCDM_BLOCK 256
#define DCDM_REDUCE_BLOCKS 1024

#if !defined(DCDM_FLUID) || !defined(DCDM_SOLID) || !defined(DCDM_AIR)
#error "define DCDM_FLUID, DCDM_SOLID and DCDM_AIR: the cell codes of dcdm/kernels/codes.py"
#endif

namespace dcdm {

typedef long long index_t;

constexpr signed char FLUID = DCDM_FLUID;
constexpr signed char SOLID = DCDM_SOLID;
constexpr signed char AIR = DCDM_AIR;

// Sum of `v` over the warp, complete in lane 0.
__device__ __forceinline__ double warp_sum(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Sum of `v` over the block (blockDim.x a multiple of 32), complete in thread 0.
// Every thread of the block must call it; it may be called again afterwards.
__device__ __forceinline__ double block_sum(double v) {
    __shared__ double warp_part[32];
    const unsigned lane = threadIdx.x & 31u;
    const unsigned warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) {
        warp_part[warp] = v;
    }
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? warp_part[lane] : 0.0;
        v = warp_sum(v);
    }
    __syncthreads();  // warp_part may be reused by the next call
    return v;
}

// Finish a grid-wide sum in one launch, deterministically: every block stores
// its partial sum, and the last block to finish adds the partials in block
// order (so the result does not depend on the scheduling) into `*result` and
// re-arms `*counter` (which must be 0 before the launch) for the next launch.
__device__ __forceinline__ void grid_sum(double v, double* __restrict__ partial,
                                         unsigned* __restrict__ counter,
                                         double* __restrict__ result) {
    __shared__ bool is_last;
    v = block_sum(v);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = v;
        __threadfence();
        is_last = atomicAdd(counter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!is_last) {
        return;
    }
    double s = 0.0;
    for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) {
        s += __ldcg(partial + b);  // bypass L1: written by other blocks
    }
    s = block_sum(s);
    if (threadIdx.x == 0) {
        *result = s;
        *counter = 0u;
    }
}

// First cell and stride of a grid-stride loop over a flat array.
__device__ __forceinline__ index_t flat_begin() {
    return static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ index_t flat_stride() {
    return static_cast<index_t>(gridDim.x) * blockDim.x;
}

// This thread's cell r = j * n2 + k of an i-plane of `plane` cells (a multiple of
// n2), blockIdx.x covering the plane; false for a thread past its end.
__device__ __forceinline__ bool plane_cell(const unsigned plane, const unsigned n2,
                                           unsigned& r, unsigned& j, unsigned& k) {
    r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= plane) {
        return false;
    }
    j = r / n2;
    k = r - j * n2;
    return true;
}

// sum_n K_cn x_n over the in-domain face neighbours of cell c = (i, j, k) of a coefficient
// stencil: k_a[c] couples c with c + e_a, so the coupling with c - e_a is k_a[c - e_a]. x may
// be written by the calling kernel (other cells), so it is read without __ldg.
template <typename T>
__device__ __forceinline__ T coupled_sum(const T* x, const T* __restrict__ k0,
                                         const T* __restrict__ k1, const T* __restrict__ k2,
                                         const index_t c, const index_t i, const unsigned j,
                                         const unsigned k, const index_t n0, const unsigned n1,
                                         const unsigned n2) {
    const index_t plane = static_cast<index_t>(n1) * n2;
    T s = T(0);
    if (i > 0) s += __ldg(k0 + c - plane) * x[c - plane];
    if (i + 1 < n0) s += __ldg(k0 + c) * x[c + plane];
    if (j > 0) s += __ldg(k1 + c - n2) * x[c - n2];
    if (j + 1 < n1) s += __ldg(k1 + c) * x[c + n2];
    if (k > 0) s += __ldg(k2 + c - 1) * x[c - 1];
    if (k + 1 < n2) s += __ldg(k2 + c) * x[c + 1];
    return s;
}

}  // namespace dcdm

// The parameters diag, k0, k1, k2 of a coefficient stencil's kernel entry point.
#define DCDM_COEF_PARAMS(T)                                                                   \
    const T* __restrict__ diag, const T* __restrict__ k0, const T* __restrict__ k1,          \
        const T* __restrict__ k2

#endif  // DCDM_COMMON_CUH
