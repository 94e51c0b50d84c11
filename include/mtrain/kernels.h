/*
 * kernels.h - float32 tensor maths for the ops: deterministic tiled gemm on
 * single-threaded OpenBLAS calls, an own FMA micro-kernel for the batch
 * products of dense and conv layers, im2col/col2im, pooling and fixed-order
 * reductions.
 *
 * Determinism. OpenBLAS results depend on the shape of a call (with the
 * Haswell kernels even row i of C = A B changes with the number of rows of
 * A) and on its thread count. So every sgemm here runs single-threaded (from
 * inside our OpenMP regions, where the OpenMP build of OpenBLAS is serial)
 * on a tile whose shape depends on the problem's shape only:
 *   - along a batch dimension, tiles are MT_BLOCK rows starting at row 0; a
 *     last partial block is padded with zero rows to MT_BLOCK, so row i of a
 *     result depends only on row i of the input and on i mod MT_BLOCK;
 *   - along other dimensions, tiles have a size fixed by that dimension
 *     (mt_gemm_tile).
 * The FMA micro-kernel (mt_gemm_nt, mt_gemm_nn, mt_conv_*) needs no such
 * rule: each element it computes is one FMA chain in a fixed order. Reductions add in an
 * order fixed by the sizes, never by the thread count.
 *
 * Workspaces. Kernels never allocate inside their loops: callers own an
 * mt_scratch (usually kept by the op) that grows on first use for a size
 * and is reused afterwards. Functions taking one are not thread safe with
 * respect to that scratch.
 *
 * The gemm wrappers other than mt_sgemm, mt_add_row_bias and mt_sum_rows
 * open their own OpenMP parallel region: call them from serial code (inside
 * another parallel region they run on one thread, with the same results).
 * mt_sgemm and the per-sample functions (im2col, col2im, pooling) are serial
 * and meant for use inside a caller's OpenMP loop over samples.
 */
#ifndef MTRAIN_KERNELS_H
#define MTRAIN_KERNELS_H

#include "mtrain/core.h"

/* ---- workspaces ----------------------------------------------------------- */

/* A grow-once, 64-byte aligned buffer. Zero-initialise ({0}) before use. */
typedef struct {
    void *p;
    size_t n_bytes; /* capacity */
} mt_scratch;

/* Ensure capacity for n_bytes (contents are not kept when it grows). Fails
 * with MT_ERR_MEM naming `what`. */
mt_status mt_scratch_reserve(mt_scratch *s, size_t n_bytes, const char *what);
/* Free the buffer and reset to empty; accepts an empty scratch. */
void mt_scratch_free(mt_scratch *s);

/* Threads the next parallel region may use (omp_get_max_threads()); per-
 * thread workspaces are sized with it before entering the region. */
int mt_kernel_threads(void);

/* ---- gemm ------------------------------------------------------------------ */

typedef enum { MT_NOTRANS = 0, MT_TRANS = 1 } mt_trans;

/* Tile size for a non-batch dimension of length `dim`: the dimension itself
 * up to 768, else 512 (the last tile takes the rest). Depends on dim only. */
int mt_gemm_tile(int dim);

/* One single-threaded row-major sgemm:
 *   C[m][n] = alpha op(A)[m][k] op(B)[k][n] + beta C.
 * Call it from inside an OpenMP region (or with one thread) so that OpenBLAS
 * does not thread it. k == 0 gives C = beta C. */
void mt_sgemm(mt_trans ta, mt_trans tb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* Row-major C[m][n] = alpha op(A) op(B) + beta C as a grid of tiles of
 * tile_m x tile_n (edge tiles smaller), one single-threaded sgemm each,
 * OpenMP over tiles. Every element's value depends on the shapes and tile
 * sizes only. Used for weight gradients, where k is the batch. */
void mt_gemm_tiled(mt_trans ta, mt_trans tb, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc, int tile_m,
                   int tile_n);

/* Batch gemm, rows = samples:
 *   C[rows][n] = alpha A[rows][k] op(B)[k][n] + beta C
 * in tiles of MT_BLOCK rows (from row 0) x mt_gemm_tile(n) columns, OpenMP
 * over tiles; a last partial row block is run padded to MT_BLOCK rows in
 * `ws` so that every sgemm has the same shape. Row i of C depends only on
 * row i of A (and C), B, and i mod MT_BLOCK. */
mt_status mt_gemm_batch(int rows, int n, int k, float alpha, const float *a, int lda, mt_trans tb,
                        const float *b, int ldb, float beta, float *c, int ldc, mt_scratch *ws);

/* Batch products on mtrain's own FMA micro-kernel (no BLAS), for dense
 * layers. Every element of C is one sequential fused multiply-add chain
 * over k = 0 .. k-1 from 0, so row i of C depends only on row i of A and on
 * B: bit for bit independent of the number of rows, the blocking and the
 * thread count (a stronger form of the MT_BLOCK rule). OpenMP inside; ws
 * holds packed copies (grow-once). k == 0 gives C = 0.
 *   mt_gemm_nt: C[rows][n] = A[rows][k] B^T, B stored [n][k] (y = x W^T)
 *   mt_gemm_nn: C[rows][n] = A[rows][k] B,   B stored [k][n] (dx = dy W)
 *   mt_gemm_tn: C[rows][n] = A^T B, A stored [k][rows], B [k][n]
 *               (dW = dy^T x: the chains run over the samples in order) */
mt_status mt_gemm_nt(int rows, int n, int k, const float *a, int lda, const float *b, int ldb,
                     float *c, int ldc, mt_scratch *ws);
mt_status mt_gemm_nn(int rows, int n, int k, const float *a, int lda, const float *b, int ldb,
                     float *c, int ldc, mt_scratch *ws);
mt_status mt_gemm_tn(int rows, int n, int k, const float *a, int lda, const float *b, int ldb,
                     float *c, int ldc, mt_scratch *ws);

/* ---- elementwise and reductions ------------------------------------------ */

/* y[i] = x[i] <= 0 ? 0 : x[i] (NaN propagates; y may be x), and
 * out[i] = x[i] > 0 ? v[i] : 0 (the ReLU's derivative applied to v), for
 * i < n. OpenMP inside; long aligned arrays are written with streaming
 * stores (the same values). */
void mt_relu_forward(size_t n, const float *x, float *y);
void mt_relu_mask(size_t n, const float *x, const float *v, float *out);

/* c[i][j] += bias[j] for i < rows, j < cols (OpenMP over rows). */
void mt_add_row_bias(int rows, int cols, const float *bias, float *c, int ldc);

/* out[j] = sum_{i < rows} a[i][j], added in increasing i in double, then
 * rounded (OpenMP over columns; the order per column is fixed). */
void mt_sum_rows(int rows, int cols, const float *a, int lda, float *out);

/* sum_{i < n} x[i] in increasing i, in double. Serial. */
double mt_sum_fixed(size_t n, const float *x);

/* ---- convolution geometry, im2col / col2im --------------------------------- */

/* A 2-D convolution of one sample: input [c][h][w], square kernel k x k,
 * stride, zero padding pad on every side; output oh x ow positions. */
typedef struct {
    int c, h, w;
    int k, stride, pad;
    int oh, ow;
} mt_conv_geom;

/* Fill the geometry, computing oh = (h + 2 pad - k) / stride + 1 (and ow);
 * fails with MT_ERR_ARG when a size is out of range or the kernel does not
 * fit in the padded input. */
mt_status mt_conv_geom_make(int c, int h, int w, int k, int stride, int pad, mt_conv_geom *g);

/* Rows of the column matrix (c k k) and its columns (oh ow). */
static inline int mt_conv_rows(const mt_conv_geom *g)
{
    return g->c * g->k * g->k;
}
static inline int mt_conv_cols(const mt_conv_geom *g)
{
    return g->oh * g->ow;
}
/* 1 when im2col is the identity (1x1 kernel, stride 1, no padding). */
static inline int mt_conv_is_pointwise(const mt_conv_geom *g)
{
    return g->k == 1 && g->stride == 1 && g->pad == 0;
}

/* col[(ci k + ki) k + kj][oy ow + ox] = x[ci][oy s - p + ki][ox s - p + kj]
 * (0 outside the input). Serial, one sample. */
void mt_im2col(const mt_conv_geom *g, const float *x, float *col);
/* The adjoint of mt_im2col: x = sum of col entries onto their input
 * positions (x is overwritten), added in the order of col's rows. Serial. */
void mt_col2im(const mt_conv_geom *g, const float *col, float *x);

/* The same restricted to the output rows [oy0, oy0 + noy): col has
 * (noy ow) columns, rows ldc floats apart (ldc >= noy ow; the columns past
 * noy ow are neither written nor read). mt_col2im_rows adds into x (not
 * cleared first). */
void mt_im2col_rows(const mt_conv_geom *g, const float *x, int oy0, int noy, float *col,
                    size_t ldc);
void mt_col2im_rows(const mt_conv_geom *g, const float *col, size_t ldc, int oy0, int noy,
                    float *x);

/* Output rows per chunk of the column matrix, so that a chunk (c k k rows
 * by chunk ow columns) stays within about 1 MiB, in the core's L2 while its
 * gemm runs; chunks are of equal size but the last. Depends on the geometry
 * only. */
int mt_conv_chunk_rows(const mt_conv_geom *g);

/* A convolution layer over a batch, on the FMA micro-kernel with im2col
 * packed straight into its operands (src/kernels/conv_fma.c says how).
 * w [out_c][c k k] (PyTorch's [out][in][k][k]), x [n][c][h][w], y and dy
 * [n][out_c][oh][ow]. Per sample, every output element is computed in an
 * order fixed by the geometry, from that sample's data only; the weight
 * gradient sums samples in order within blocks of MT_BLOCK (in an order
 * fixed by the geometry) and adds the blocks in order (fixed by n). OpenMP
 * inside; ws grows once.
 *   mt_conv_forward:          y = W * x (+ bias per channel when not NULL)
 *   mt_conv_backward_data:    dx = W^T * dy (the adjoint in x)
 *   mt_conv_backward_weights: dw = sum_i dy_i col(x_i)^T, db = sum dy_i */
mt_status mt_conv_forward(const mt_conv_geom *g, int out_c, const float *w, const float *bias,
                          int n, const float *x, float *y, mt_scratch *ws);
mt_status mt_conv_backward_data(const mt_conv_geom *g, int out_c, const float *w, int n,
                                const float *dy, float *dx, mt_scratch *ws);
mt_status mt_conv_backward_weights(const mt_conv_geom *g, int out_c, int n, const float *x,
                                   const float *dy, float *dw, float *db, mt_scratch *ws);
/* mt_conv_backward_weights in two halves, for sums taken slice by slice:
 * the partials of each MT_BLOCK block of samples (mt_conv_weight_block_floats
 * floats per block, 64-byte multiples) of n samples into part, then the sum
 * of n_blocks consecutive blocks' partials in block order. Slices of whole
 * blocks (all but the last) give the bits of the one-call pass. */
size_t mt_conv_weight_block_floats(const mt_conv_geom *g, int out_c);
mt_status mt_conv_weight_partials(const mt_conv_geom *g, int out_c, int n, const float *x,
                                  const float *dy, float *part, mt_scratch *ws);
void mt_conv_weight_reduce(const mt_conv_geom *g, int out_c, int n_blocks, const float *part,
                           float *dw, float *db);

/* ---- pooling (one sample, serial) ------------------------------------------ */

/* Non-overlapping average pooling with window k on x[c][h][w] (floor mode):
 * y[c][h/k][w/k] = mean of the window, summed row by row in float. */
void mt_avgpool_forward(int c, int h, int w, int k, const float *x, float *y);
/* dx = the adjoint: dy / (k k) spread over each window, 0 on the dropped
 * trailing rows and columns. */
void mt_avgpool_backward(int c, int h, int w, int k, const float *dy, float *dx);
/* Global average: y[ci] = mean over h w of x[ci], summed in double. */
void mt_gap_forward(int c, int hw, const float *x, float *y);
/* dx[ci][j] = dy[ci] / hw. */
void mt_gap_backward(int c, int hw, const float *dy, float *dx);

#endif
