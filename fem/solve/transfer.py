"""Trilinear transfers between the levels of the voxel multigrid, matrix-free.

P interpolates a coarse level's node displacements to the nodes of the level below
(fem.solve.voxel_levels.interpolation_parents: an even lattice coordinate has one parent, an odd one
two). Rows of constrained fine DOFs and columns of constrained coarse DOFs are zero:
coarse corrections leave the fine constraints alone, and the restricted residual is
zero where the coarse level is constrained (its identity rows would otherwise return
the residual itself as a correction, and CG would need several times the iterations).

:class:`Transfer` applies P and P^T in C (fem.solve.voxel_kernel) from eight parent
indices per fine node instead of an AIJ matrix (faster, docs/benchmark.md).
:func:`interpolation_matrix` builds the same P as a PETSc AIJ matrix (tests, P^T A P).

Layouts: the fine side is the owned nodes of the level below in its own numbering
(DOLFINx's on level 0); the coarse side is a coarse level's z-slab numbering
(fem.solve.multigrid.slab_level). A PETSc scatter brings the coarse values a rank's
fine nodes need (owned or not) into one local array, and adds them back for P^T.
"""

from __future__ import annotations

import numpy as np
from petsc4py import PETSc

from fem.solve import voxel_kernel
from fem.solve.voxel_levels import CoarseLevel, interpolation_parents

class Transfer:
    """PETSc python-matrix context for P (rows: owned fine DOFs, columns: coarse DOFs).

    fine_ijk : (n, 3) lattice coordinates of the owned fine nodes
    fine_bcs : local indices of their constrained DOFs (< 3 n)
    n_fine_global : DOFs of the fine level on all ranks
    coarse : the coarse level (all ranks); coarse_owned : DOFs of it this rank owns
    coarse_bcs : its constrained DOFs, global numbering
    holder : (n,) element of ``coarse`` whose piece holds each fine node, where ``coarse``
        has split nodes (fem.solve.voxel_levels.interpolation_parents); else None
    (the arguments of :func:`interpolation_matrix`)
    """

    def __init__(self, comm, fine_ijk: np.ndarray, fine_bcs: np.ndarray, n_fine_global: int,
                 coarse: CoarseLevel, coarse_owned: int, coarse_bcs: np.ndarray, holder=None):
        n = len(fine_ijk)
        cols, _ = interpolation_parents(fine_ijk, coarse, holder)
        # corners that are not parents repeat a parent (weight 0), so every index is used;
        # a marker array instead of np.unique: no sort of 8 entries per fine node
        used = np.zeros(len(coarse.nodes), dtype=bool)
        used[cols] = True
        needed = np.flatnonzero(used)
        position = np.cumsum(used, dtype=np.int32) - 1
        self.parent = np.ascontiguousarray(position[cols], dtype=np.int32)
        self.odd = np.ascontiguousarray(((fine_ijk & 1) @ np.array([1, 2, 4])).astype(np.uint8))
        self.fixed = np.zeros(3 * n, dtype=np.uint8)
        self.fixed[np.asarray(fine_bcs, dtype=np.int64)] = 1
        is_bc = np.zeros(coarse.dofs, dtype=bool)
        is_bc[coarse_bcs] = True
        dofs = (3 * needed[:, None] + np.arange(3)).ravel()
        self.coarse_fixed = np.flatnonzero(is_bc[dofs])
        self.local = PETSc.Vec().createSeq(len(dofs), comm=PETSc.COMM_SELF)
        index = PETSc.IS().createGeneral(dofs.astype(PETSc.IntType), comm=PETSc.COMM_SELF)
        layout = PETSc.Vec().createMPI((coarse_owned, coarse.dofs), comm=comm)
        self.scatter = PETSc.Scatter().create(layout, index, self.local, None)
        index.destroy()
        layout.destroy()
        self.comm = comm
        self.sizes = ((3 * n, n_fine_global), (coarse_owned, coarse.dofs))

    def _gather(self, xc: PETSc.Vec) -> np.ndarray:
        self.scatter.scatter(xc, self.local, PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
        a = self.local.getArray()
        a[self.coarse_fixed] = 0.0
        return a

    def multAdd(self, mat, xc, y, z):
        """z = y + P xc"""
        if z.handle != y.handle:
            y.copy(z)
        a = self._gather(xc)
        voxel_kernel.interpolate_add(self.parent, self.odd, self.fixed, a, z.getArray())

    def mult(self, mat, xc, y):
        y.zeroEntries()
        self.multAdd(mat, xc, y, y)

    def multTransposeAdd(self, mat, y, xc, zc):
        """zc = xc + P^T y"""
        a = self.local.getArray()
        a[:] = 0.0
        voxel_kernel.restrict_add(self.parent, self.odd, self.fixed, y.getArray(readonly=True), a)
        a[self.coarse_fixed] = 0.0
        if zc.handle != xc.handle:
            xc.copy(zc)
        self.scatter.scatter(self.local, zc, PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)

    def multTranspose(self, mat, y, xc):
        xc.zeroEntries()
        self.multTransposeAdd(mat, y, xc, xc)

    def as_petsc(self) -> PETSc.Mat:
        P = PETSc.Mat().createPython(self.sizes, context=self, comm=self.comm)
        P.setUp()
        return P

    def free(self):
        """Release the scatter and work vector (not named destroy: PETSc calls a python
        matrix context's destroy(mat) itself)."""
        self.scatter.destroy()
        self.local.destroy()


def interpolation_matrix(comm, fine_ijk, fine_bcs, n_fine_global, coarse: CoarseLevel,
                         coarse_owned: int, coarse_bcs: np.ndarray, holder=None) -> PETSc.Mat:
    """The same P as an MPIAIJ matrix (3 rows per owned fine node), for tests and P^T A P."""
    n = len(fine_ijk)
    cols, w = interpolation_parents(fine_ijk, coarse, holder)
    fine_bc = np.zeros(3 * n, dtype=bool)
    fine_bc[np.asarray(fine_bcs, dtype=np.int64)] = True
    coarse_bc = np.zeros(coarse.dofs, dtype=bool)
    coarse_bc[coarse_bcs] = True
    cc = 3 * cols[:, None, :].astype(np.int64) + np.arange(3)[None, :, None]     # (n, 3, 8)
    ww = np.broadcast_to(w[:, None, :], cc.shape).copy()
    ww[fine_bc.reshape(-1, 3)] = 0.0
    ww[coarse_bc[cc]] = 0.0
    keep = ww != 0
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=2).ravel())])
    P = PETSc.Mat().createAIJ(((3 * n, n_fine_global), (coarse_owned, coarse.dofs)),
                              csr=(indptr.astype(PETSc.IntType), cc[keep].astype(PETSc.IntType),
                                   ww[keep]), comm=comm)
    P.assemble()
    return P
