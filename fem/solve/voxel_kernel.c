/* Element kernels of bonefem's matrix-free solver; compiled by fem/solve/voxel_kernel.py
   (cffi, -O3 -march=native), declarations in its _CDEF. */
#include <stdint.h>

/* The element's 24 DOF values from node-major x; ye zeroed. */
static inline void gather(const int32_t *c, const double *x, double *xe, double *ye)
{
    for (int a = 0; a < 8; ++a) {
        const double *xa = x + 3 * (int64_t)c[a];
        xe[3 * a] = xa[0]; xe[3 * a + 1] = xa[1]; xe[3 * a + 2] = xa[2];
    }
    for (int i = 0; i < 24; ++i) ye[i] = 0.0;
}

/* y += the element's 24 values. */
static inline void scatter(const int32_t *c, const double *ye, double *y)
{
    for (int a = 0; a < 8; ++a) {
        double *ya = y + 3 * (int64_t)c[a];
        ya[0] += ye[3 * a]; ya[1] += ye[3 * a + 1]; ya[2] += ye[3 * a + 2];
    }
}

/* y += sum_e (sum_b w[e,b] K_b) x_e over the elements; x, y node-major (3 per node).
   cells: n_cells x 8 local node indices; basis: m x 24 x 24, each K_b symmetric, so
   row j of K_b is its column j and the product is a sum of contiguous axpys that the
   compiler vectorises. */
void voxel_matvec(int64_t n_cells, const int32_t *cells, int32_t m,
                  const double *weights, const double *basis,
                  const double *x, double *y)
{
    double xe[24], ye[24];
    for (int64_t e = 0; e < n_cells; ++e) {
        const int32_t *c = cells + 8 * e;
        gather(c, x, xe, ye);
        const double *w = weights + (int64_t)m * e;
        for (int b = 0; b < m; ++b) {
            const double wb = w[b];
            if (wb == 0.0) continue;
            const double *K = basis + 576 * b;
            for (int j = 0; j < 24; ++j) {
                const double xj = wb * xe[j];
                const double *Kj = K + 24 * j;
                for (int i = 0; i < 24; ++i) ye[i] += Kj[i] * xj;
            }
        }
        scatter(c, ye, y);
    }
}

/* y += sum_e K_e x_e with one symmetric 24 x 24 matrix per element (mats: n x 576). */
void element_matvec(int64_t n_cells, const int32_t *cells, const double *mats,
                    const double *x, double *y)
{
    double xe[24], ye[24];
    for (int64_t e = 0; e < n_cells; ++e) {
        const int32_t *c = cells + 8 * e;
        gather(c, x, xe, ye);
        const double *K = mats + 576 * e;
        for (int j = 0; j < 24; ++j) {
            const double xj = xe[j];
            const double *Kj = K + 24 * j;
            for (int i = 0; i < 24; ++i) ye[i] += Kj[i] * xj;
        }
        scatter(c, ye, y);
    }
}

/* The box kernel works on four elements at once: v4 holds one number of each (the
   compiler maps it to one AVX register, or two SSE ones). */
typedef double v4 __attribute__((vector_size(32)));

/* In place 8-point Walsh-Hadamard transform, v[m] <- sum_a (-1)^popcount(m & a) v[a]. */
static inline void hadamard8(v4 *v)
{
    const v4 a0 = v[0] + v[1], a1 = v[0] - v[1], a2 = v[2] + v[3], a3 = v[2] - v[3];
    const v4 a4 = v[4] + v[5], a5 = v[4] - v[5], a6 = v[6] + v[7], a7 = v[6] - v[7];
    const v4 b0 = a0 + a2, b2 = a0 - a2, b1 = a1 + a3, b3 = a1 - a3;
    const v4 b4 = a4 + a6, b6 = a4 - a6, b5 = a5 + a7, b7 = a5 - a7;
    v[0] = b0 + b4; v[4] = b0 - b4; v[1] = b1 + b5; v[5] = b1 - b5;
    v[2] = b2 + b6; v[6] = b2 - b6; v[3] = b3 + b7; v[7] = b3 - b7;
}

/* y += sum_e w[e] K x_e for one box stiffness K given by its eight 3 x 3 blocks in the
   Hadamard basis (box_blocks in voxel_kernel.py): each component's 8 corner values are
   transformed, class p couples mode p ^ 1 of u_x, p ^ 2 of u_y and p ^ 4 of u_z, and the
   transform is its own inverse up to the 1/64 folded into the blocks. 72 multiply-adds
   and 144 additions per element instead of 576 multiply-adds; four elements per step,
   scattered one after the other (neighbours share nodes). */
void box_matvec(int64_t n_cells, const int32_t *cells, const double *w,
                const double *blocks, const double *x, double *y)
{
    int64_t e0 = 0;
    for (; e0 < n_cells; e0 += 4) {
        const int k_end = n_cells - e0 < 4 ? (int)(n_cells - e0) : 4;
        const int32_t *c = cells + 8 * e0;
        v4 u[3][8], v[3][8], we = {0.0, 0.0, 0.0, 0.0};
        for (int a = 0; a < 8; ++a)
            for (int k = 0; k < 4; ++k) {
                /* a short last group repeats its first element with weight 0 */
                const double *xa = x + 3 * (int64_t)c[8 * (k < k_end ? k : 0) + a];
                u[0][a][k] = xa[0]; u[1][a][k] = xa[1]; u[2][a][k] = xa[2];
            }
        for (int k = 0; k < k_end; ++k) we[k] = w[e0 + k];
        hadamard8(u[0]); hadamard8(u[1]); hadamard8(u[2]);
        for (int p = 0; p < 8; ++p) {
            const double *B = blocks + 9 * p;
            const v4 a0 = we * u[0][p ^ 1], a1 = we * u[1][p ^ 2], a2 = we * u[2][p ^ 4];
            v[0][p ^ 1] = B[0] * a0 + B[1] * a1 + B[2] * a2;
            v[1][p ^ 2] = B[3] * a0 + B[4] * a1 + B[5] * a2;
            v[2][p ^ 4] = B[6] * a0 + B[7] * a1 + B[8] * a2;
        }
        hadamard8(v[0]); hadamard8(v[1]); hadamard8(v[2]);
        for (int k = 0; k < k_end; ++k)
            for (int a = 0; a < 8; ++a) {
                double *ya = y + 3 * (int64_t)c[8 * k + a];
                ya[0] += v[0][a][k]; ya[1] += v[1][a][k]; ya[2] += v[2][a][k];
            }
    }
}

/* y += sum_e (sum_s w[e, s] B_s) x_e for the eight Galerkin matrices B_s of a box's
   children (fem.solve.voxel_levels.galerkin_basis). In the Hadamard basis B_s is B_0
   with the signs of its children's mirror image, so the element matrix is B_0's 3 x 3
   class blocks G[P][Q] times hw[P ^ Q], hw the Hadamard transform of the eight child
   weights (galerkin_blocks in voxel_kernel.py): 64 blocks per element computed from
   8 numbers instead of a stored 24 x 24 matrix. G: 8 x 8 x 3 x 3 (1/64 folded in). */
void galerkin8_matvec(int64_t n_cells, const int32_t *cells, const double *w,
                      const double *G, const double *x, double *y)
{
    for (int64_t e0 = 0; e0 < n_cells; e0 += 4) {
        const int k_end = n_cells - e0 < 4 ? (int)(n_cells - e0) : 4;
        const int32_t *c = cells + 8 * e0;
        v4 u[3][8], v[3][8], hw[8];
        for (int a = 0; a < 8; ++a)
            for (int k = 0; k < 4; ++k) {
                const double *xa = x + 3 * (int64_t)c[8 * (k < k_end ? k : 0) + a];
                u[0][a][k] = xa[0]; u[1][a][k] = xa[1]; u[2][a][k] = xa[2];
                hw[a][k] = k < k_end ? w[8 * (e0 + k) + a] : 0.0;
            }
        hadamard8(u[0]); hadamard8(u[1]); hadamard8(u[2]); hadamard8(hw);
        for (int P = 0; P < 8; ++P) {
            v4 y0 = {0.0, 0.0, 0.0, 0.0}, y1 = y0, y2 = y0;
            for (int Q = 0; Q < 8; ++Q) {
                const double *B = G + 9 * (8 * P + Q);
                const v4 x0 = u[0][Q ^ 1], x1 = u[1][Q ^ 2], x2 = u[2][Q ^ 4], t = hw[P ^ Q];
                y0 += t * (B[0] * x0 + B[1] * x1 + B[2] * x2);
                y1 += t * (B[3] * x0 + B[4] * x1 + B[5] * x2);
                y2 += t * (B[6] * x0 + B[7] * x1 + B[8] * x2);
            }
            v[0][P ^ 1] = y0; v[1][P ^ 2] = y1; v[2][P ^ 4] = y2;
        }
        hadamard8(v[0]); hadamard8(v[1]); hadamard8(v[2]);
        for (int k = 0; k < k_end; ++k)
            for (int a = 0; a < 8; ++a) {
                double *ya = y + 3 * (int64_t)c[8 * k + a];
                ya[0] += v[0][a][k]; ya[1] += v[1][a][k]; ya[2] += v[2][a][k];
            }
    }
}

/* out[parent[e]] += P_s^T K_e P_s for children e in slot s = slot[e] of their parent,
   P_s = kron(W_s, I_3) with W_s (8 x 8) the trilinear weights of the parent's corners at
   the child's corners: two 8-term contractions, 9216 multiply-adds per child (a dense
   P_s would take 27648). K: n x 576, W: 8 x 8 x 8, out: n_parents x 576. */
void galerkin_add(int64_t n, const double *K, const int32_t *slot, const int64_t *parent,
                  const double *W, double *out)
{
    for (int64_t e = 0; e < n; ++e) {
        const double *Ke = K + 576 * e, *w = W + 64 * slot[e];
        double T[24][24];      /* T = K P */
        for (int r = 0; r < 24; ++r)
            for (int b = 0; b < 8; ++b)
                for (int j = 0; j < 3; ++j) {
                    double t = 0.0;
                    for (int a = 0; a < 8; ++a) t += Ke[24 * r + 3 * a + j] * w[8 * a + b];
                    T[r][3 * b + j] = t;
                }
        double *G = out + 576 * parent[e];
        for (int b = 0; b < 8; ++b)
            for (int i = 0; i < 3; ++i) {
                double *Gr = G + 24 * (3 * b + i);
                for (int a = 0; a < 8; ++a) {
                    const double wab = w[8 * a + b];
                    if (wab == 0.0) continue;
                    for (int c = 0; c < 24; ++c) Gr[c] += wab * T[3 * a + i][c];
                }
            }
    }
}

/* d += diagonal of the unassembled operator (same arguments as voxel_matvec). */
void voxel_diagonal(int64_t n_cells, const int32_t *cells, int32_t m,
                    const double *weights, const double *basis, double *d)
{
    for (int64_t e = 0; e < n_cells; ++e) {
        const int32_t *c = cells + 8 * e;
        const double *w = weights + (int64_t)m * e;
        for (int i = 0; i < 24; ++i) {
            double s = 0.0;
            for (int b = 0; b < m; ++b) s += w[b] * basis[576 * b + 25 * i];
            d[3 * (int64_t)c[i / 3] + i % 3] += s;
        }
    }
}

/* Trilinear transfer between a voxel level and the one above, fine nodes i < n:
   parent (n x 8) indices of the coarse corners around node i in a local coarse array,
   odd[i] the bits (x 1, y 2, z 4) of its odd lattice coordinates: corner k is a parent
   iff its bits lie in odd[i], with weight 2^-popcount(odd[i]). fixed (3 n) marks
   constrained fine DOFs: zero rows of the interpolation. */
void interpolate_add(int64_t n, const int32_t *parent, const uint8_t *odd, const uint8_t *fixed,
                     const double *xc, double *y)
{
    for (int64_t i = 0; i < n; ++i) {
        const int o = odd[i];
        const double w = 1.0 / (double)(1 << __builtin_popcount(o));
        double s0 = 0.0, s1 = 0.0, s2 = 0.0;
        for (int k = 0; k < 8; ++k) {
            if (k & ~o) continue;      /* not a parent (measured: faster than weight 0) */
            const double *xp = xc + 3 * (int64_t)parent[8 * i + k];
            s0 += xp[0]; s1 += xp[1]; s2 += xp[2];
        }
        const uint8_t *f = fixed + 3 * i;
        double *yi = y + 3 * i;
        if (!f[0]) yi[0] += w * s0;
        if (!f[1]) yi[1] += w * s1;
        if (!f[2]) yi[2] += w * s2;
    }
}

/* The transpose: xc[parents of i] += w y_i over the free fine DOFs. */
void restrict_add(int64_t n, const int32_t *parent, const uint8_t *odd, const uint8_t *fixed,
                  const double *y, double *xc)
{
    for (int64_t i = 0; i < n; ++i) {
        const int o = odd[i];
        const double w = 1.0 / (double)(1 << __builtin_popcount(o));
        const uint8_t *f = fixed + 3 * i;
        const double v0 = f[0] ? 0.0 : w * y[3 * i], v1 = f[1] ? 0.0 : w * y[3 * i + 1];
        const double v2 = f[2] ? 0.0 : w * y[3 * i + 2];
        for (int k = 0; k < 8; ++k) {
            if (k & ~o) continue;
            double *xp = xc + 3 * (int64_t)parent[8 * i + k];
            xp[0] += v0; xp[1] += v1; xp[2] += v2;
        }
    }
}
