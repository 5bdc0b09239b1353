"""Matrix-free voxel elasticity with geometric multigrid (the ``matfree`` solver).

Every voxel element shares one reference stiffness scaled by its modulus, so the
operator is applied element by element (fem.solve.voxel_kernel) and never
assembled, as in ParOSol and Faim. CG is preconditioned by a multigrid W-cycle on the
voxel hierarchy (fem.solve.voxel_levels): coarse boxes of twice the edge, trilinear
transfers (fem.solve.transfer), Chebyshev/Jacobi smoothing on every level, and a
direct solve (CHOLMOD, else MUMPS) of the coarsest level (< 30 sqrt(fine DOF), 5-30 k). Level 1 is
rediscretised with the mean modulus of each box's eight children (``exact=False``, the
default) or is their exact Galerkin product (``exact=True``); deeper levels are the exact
Galerkin products of the level below (docs/benchmark.md measures the choices). The memory is a few vectors, the connectivity and the parent indices of the transfers,
not a stiffness matrix and an AMG hierarchy.

Parallel layout: level 0 is DOLFINx's distributed mesh and DOF numbering (so the
solution lands in a DOLFINx Function and boundary conditions are DOLFINx's); the
coarse levels, which every rank derives from the gathered fine voxels, are split into
z slabs. The transfers connect the two layouts (a PETSc scatter per level).

Boundary conditions are applied as in DOLFINx's assembled system: constrained rows and
columns replaced by the identity, so both solvers solve the same linear system.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from fem.solve import memory, transfer, voxel_kernel
from fem.solve.voxel_levels import (CoarseLevel, Constraints, boundary_dofs, element_matrices,
                                    first_coarse, next_coarse, node_holders)

# Coarsen until a level has fewer DOF than COARSE_SCALE x sqrt(fine DOF), within
# [COARSE_MIN, COARSE_MAX]; that level is factored (CHOLMOD) and solved 2^(levels - 1)
# times per iteration by the W-cycle. On real bone the smallest levels' coarse spaces are
# poor: stopping before them cuts CG iterations by up to 2.4x. The factorisation's cost
# grows about as the square of the coarsest level's DOF and an iteration's as the fine
# DOF, so the limit grows with the square root (the 5 k of old below 28 k fine DOF, 30 k
# at 1 M); the cap keeps the factor, held on every rank, small next to the rest
# (docs/benchmark.md, "The coarsest level"). COARSE_DOFS, when set, is a fixed limit
# instead (benchmarks).
COARSE_SCALE = 30.0
COARSE_MIN = 5000
COARSE_MAX = 30000
COARSE_DOFS = None
MAX_LEVELS = 10
# Coarse levels with split coarse nodes (fem.solve.coarse_pieces), and above level 1 one
# coarse element per connected piece of a cell (PIECES): docs/benchmark.md measures them
SPLIT = True
PIECES = True
CHUNK = 100_000          # nodes or cells per block when building the hierarchy

# PETSc options of the multigrid cycle (the operators and transfers are set by the code);
# the reasons and measurements behind each are in docs/benchmark.md.
OPTIONS = {
    "pc_type": "mg",
    # W-cycle: each coarse level's correction is solved twice as well. On porous bone the
    # trilinear coarse spaces are poor and a V-cycle's iterations grow with every level;
    # the levels shrink about 4.5x each, so the W-cycle stays O(n).
    "pc_mg_cycle_type": "w",
    "mg_levels_ksp_type": "chebyshev",
    "mg_levels_pc_type": "jacobi",
    "mg_levels_ksp_max_it": 2,
    "mg_levels_ksp_chebyshev_esteig_steps": 10,
    # CG (Lanczos) estimates the largest eigenvalue of the SPD levels as well as GMRES,
    # with 4 work vectors instead of 20
    "mg_levels_esteig_ksp_type": "cg",
    "mg_coarse_ksp_type": "preonly",
    "mg_coarse_pc_type": "redundant",
    "mg_coarse_redundant_pc_type": "cholesky",
    # CHOLMOD factors the coarsest level fastest of the three available
    "mg_coarse_redundant_pc_factor_mat_solver_type":
        "cholmod" if PETSc.Sys.hasExternalPackage("cholmod") else "mumps",
}


def coarse_limit(fine_dofs: int) -> int:
    """The DOF below which a level is the coarsest, for a fine level of ``fine_dofs``."""
    if COARSE_DOFS is not None:
        return int(COARSE_DOFS)
    return int(np.clip(COARSE_SCALE * np.sqrt(fine_dofs), COARSE_MIN, COARSE_MAX))


class LevelOperator:
    """PETSc python-matrix context: y = (I - D) K (I - D) x + D x, matrix-free.

    imap : DOLFINx IndexMap of the level's nodes (owned + ghosts)
    groups : [(cells, weights, basis)], K = the sum of their element products:
        cells (n, 8) local node indices in tensor-product order; weights (n, m) and
        basis (m, 24, 24), or None and (n, 24, 24) (fem.solve.voxel_kernel.matvec)
    bcs : local unrolled DOF indices (owned and ghost) that are constrained (D)
    """

    def __init__(self, imap, groups, bcs):
        import dolfinx.la

        self.imap = imap
        n_nodes = imap.size_local + imap.num_ghosts
        self.groups = []
        for cells, weights, basis in groups:
            cells = np.ascontiguousarray(cells, dtype=np.int32)
            if len(cells) and (cells.min() < 0 or cells.max() >= n_nodes):
                raise RuntimeError("multigrid: element connectivity outside the local nodes")
            self.groups.append((cells, None if weights is None else
                                np.ascontiguousarray(weights, dtype=np.float64),
                                np.ascontiguousarray(basis, dtype=np.float64)))
        self.n_owned = 3 * imap.size_local
        self.bcs = np.asarray(bcs, dtype=np.int64)
        self.bcs_owned = self.bcs[self.bcs < self.n_owned]
        # one rank: no ghosts to exchange (a rank without ghosts in a parallel run still
        # takes part in the collective scatters)
        self.serial = imap.comm.size == 1
        self.xv = dolfinx.la.vector(imap, bs=3)
        # on one rank mult() accumulates straight into PETSc's y: no second work vector
        # held through the solve (one vector of the level, 8 B per DOF)
        self.yv = None if self.serial else dolfinx.la.vector(imap, bs=3)

    def _y(self):
        """The y work vector (ghosted): the persistent one, or a temporary on one rank."""
        import dolfinx.la

        return self.yv if self.yv is not None else dolfinx.la.vector(self.imap, bs=3)

    def apply_local(self, x_owned: np.ndarray, constrained: bool = True) -> np.ndarray:
        """K (I - D) x for owned entries ``x_owned``; returns the owned part (no D rows)."""
        import dolfinx.la

        yv = self._y()
        xw, yw = self.xv.array, yv.array
        xw[: self.n_owned] = x_owned
        self.xv.scatter_forward()
        if constrained:
            xw[self.bcs] = 0.0
        self._products(xw, yw)
        yv.scatter_reverse(dolfinx.la.InsertMode.add)
        return yw[: self.n_owned] if yv is self.yv else yw[: self.n_owned].copy()

    def _products(self, xw: np.ndarray, yw: np.ndarray) -> None:
        """yw = K xw over the local elements (owned and ghost entries)."""
        yw[:] = 0.0
        for cells, weights, basis in self.groups:
            voxel_kernel.matvec(cells, weights, basis, xw, yw)

    def mult(self, mat, x, y):
        xa = x.getArray(readonly=True)
        ya = y.getArray()
        if self.serial:       # nothing to exchange: accumulate straight into y
            xw = self.xv.array
            xw[:] = xa
            xw[self.bcs] = 0.0
            self._products(xw, ya)
        else:
            ya[:] = self.apply_local(xa)
        ya[self.bcs_owned] = xa[self.bcs_owned]

    def getDiagonal(self, mat, d):
        import dolfinx.la

        n_nodes = self.imap.size_local + self.imap.num_ghosts
        diag = voxel_kernel.diagonal(*self.groups[0], n_nodes)
        for c, w, b in self.groups[1:]:
            diag += voxel_kernel.diagonal(c, w, b, n_nodes)
        da = d.getArray()
        if self.serial:     # no ghosts: straight into d (PETSc sets the smoothers up while
            da[:] = diag    # the estimator's vectors exist: no more temporaries than this)
        else:
            self.yv.array[:] = diag
            self.yv.scatter_reverse(dolfinx.la.InsertMode.add)
            da[:] = self.yv.array[: self.n_owned]
        da[self.bcs_owned] = 1.0

    def as_petsc(self, comm) -> PETSc.Mat:
        n, N = self.n_owned, 3 * self.imap.size_global
        A = PETSc.Mat().createPython(((n, N), (n, N)), context=self, comm=comm)
        A.setUp()
        return A


def fine_cells(V, spacing):
    """Level 0 from a DOLFINx P1 vector space on a voxel mesh.

    Returns ``(cells, lattice, node_ijk)``: (n_cells, 8) local node indices in
    tensor-product order, (n_cells, 3) lattice coordinates of each cell's lowest corner,
    (n_nodes_local, 3) lattice coordinates of the local nodes (owned, then ghosts).
    """
    h = np.asarray(spacing, dtype=float)
    node_ijk = np.rint(V.tabulate_dof_coordinates() / h).astype(np.int64)
    dofs = V.dofmap.list
    cells, lattice = np.empty_like(dofs), np.empty((len(dofs), 3), dtype=np.int64)
    for lo in range(0, len(dofs), CHUNK):        # (n, 8, 3) at once would be 192 B per cell
        part = slice(lo, lo + CHUNK)
        corner = node_ijk[dofs[part]]
        lattice[part] = corner.min(axis=1)
        slot = (corner - lattice[part, None, :]) @ np.array([1, 2, 4])
        if not np.all(np.sort(slot, axis=1) == np.arange(8)):
            raise ValueError("the mesh is not a voxel mesh of the given spacing")
        np.put_along_axis(cells[part], slot, dofs[part], axis=1)
    return cells, lattice, node_ijk


@dataclass
class SlabLevel:
    """The local part of a coarse level on this rank (z-slab layout)."""

    level: CoarseLevel
    imap: object
    node_ijk: np.ndarray      # (n_owned + n_ghosts, 3) lattice coordinates
    op: LevelOperator
    bc_global: np.ndarray     # constrained DOFs of the whole level, global numbering


def slab_level(comm, level: CoarseLevel, fixed: Constraints) -> SlabLevel:
    """Split a coarse level (known on every rank) into z slabs of balanced element counts."""
    import dolfinx.common

    rank, size = comm.rank, comm.size
    k = level.cells[:, 2]
    # Cut planes at element-count quantiles; cells are sorted z-major so slabs are ranges.
    cuts = np.searchsorted(k, np.quantile(k, np.arange(1, size) / size), side="left") if size > 1 else []
    bounds = np.concatenate([[0], cuts, [len(k)]]).astype(np.int64)
    kcut = np.array([k[b] if b < len(k) else k.max() + 2 for b in bounds[1:-1]], dtype=np.int64)
    node_k = level.nodes // (level.dims[0] * level.dims[1])
    # Rank r owns the nodes with kcut[r-1] <= k < kcut[r] (the last rank the rest).
    offsets = np.concatenate([[0], np.searchsorted(node_k, kcut, side="left"), [len(node_k)]])
    lo, hi = offsets[rank], offsets[rank + 1]
    my = slice(bounds[rank], bounds[rank + 1])
    corners = level.corner_nodes()[my].astype(np.int64)                      # global node ids
    ghosts = np.unique(corners[(corners < lo) | (corners >= hi)])
    owners = (np.searchsorted(offsets, ghosts, side="right") - 1).astype(np.int32)
    imap = dolfinx.common.IndexMap(comm, int(hi - lo), ghosts.astype(np.int64), owners)
    local = np.where((corners >= lo) & (corners < hi), corners - lo,
                     (hi - lo) + np.searchsorted(ghosts, corners))
    gid = np.concatenate([np.arange(lo, hi), ghosts])
    NX, NY = level.dims[0], level.dims[1]
    lid = level.nodes
    all_ijk = np.column_stack([lid % NX, (lid // NX) % NY, lid // (NX * NY)])
    bc_global = boundary_dofs(all_ijk, fixed.top, fixed.test, fixed.pins)
    node_ijk = all_ijk[gid]
    # the same constraints in local numbering: owned DOFs, then ghost DOFs
    g3 = (3 * gid[:, None] + np.arange(3)).ravel()
    is_bc = np.zeros(level.dofs, dtype=bool)
    is_bc[bc_global] = True
    bcs = np.flatnonzero(is_bc[g3])
    groups = []
    if level.weights is None:
        groups.append((local, None, level.basis[my]))
    else:
        groups.append((local, level.weights[my], level.basis))
        special, mats = level.extra
        sel = (special >= my.start) & (special < my.stop)
        groups.append((local[special[sel] - my.start], None, mats[sel]))
    op = LevelOperator(imap, groups, bcs)
    return SlabLevel(level, imap, node_ijk, op, bc_global)


def coarse_matrix(comm, sl: SlabLevel) -> PETSc.Mat:
    """The coarsest level as an MPIAIJ matrix (owned rows), identity on constrained DOFs."""
    import scipy.sparse as sp

    level, op = sl.level, sl.op
    corners = level.corner_nodes().astype(np.int64)                          # all cells
    dofs = (3 * corners[:, :, None] + np.arange(3)).reshape(-1, 24)
    Ke = element_matrices(level, np.arange(len(level.cells)))
    N = level.dofs
    K = sp.coo_matrix((Ke.ravel(), (np.repeat(dofs, 24, axis=1).ravel(), np.tile(dofs, (1, 24)).ravel())),
                      shape=(N, N)).tocsr()
    lo = 3 * sl.imap.local_range[0]
    keep = np.ones(N)
    keep[sl.bc_global] = 0.0
    # Where bone is sparse the trilinear transfer restricted to the bone's nodes can map
    # some coarse vectors to zero; P^T A P is then singular in exactly those directions
    # (measured on a lattice of 2-voxel columns: eigenvalues 1e-16 of the largest), and a
    # direct solve returns round-off blown up by 1e16, which breaks CG (indefinite
    # preconditioner). A diagonal shift of 1e-6 makes the coarse solve SPD; the shifted
    # directions are not seen by the fine level (P v = 0) and the rest changes by 1e-6.
    K = sp.diags(keep) @ (K + sp.diags(1e-6 * K.diagonal())) @ sp.diags(keep) + sp.diags(1.0 - keep)
    K = K.tocsr()
    K.sort_indices()
    rows = K[lo: lo + op.n_owned]
    A = PETSc.Mat().createAIJ(((op.n_owned, N), (op.n_owned, N)),
                              csr=(rows.indptr.astype(PETSc.IntType), rows.indices.astype(PETSc.IntType),
                                   rows.data), comm=comm)
    A.assemble()
    return A


def _petsc_library():
    """ctypes handle of the PETSc library petsc4py loaded (for the one call petsc4py lacks)."""
    import ctypes

    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "libpetsc" in line and ".so" in line}
    if not paths:
        raise RuntimeError("multigrid: the PETSc library is not loaded")
    return ctypes.CDLL(sorted(paths)[0])


def _drop_estimator(smoother: PETSc.KSP) -> None:
    """KSPChebyshevEstEigSet(smoother, 0, 0, 0, 0): destroy a set-up Chebyshev smoother's
    eigenvalue estimator (the computed bounds are kept; PETSc 3.22 cheby.c)."""
    import ctypes

    if smoother.getType() != PETSc.KSP.Type.CHEBYSHEV:
        return
    f = _petsc_library().KSPChebyshevEstEigSet
    f.argtypes = [ctypes.c_void_p] + [ctypes.c_double] * 4
    f.restype = ctypes.c_int
    if f(smoother.handle, 0.0, 0.0, 0.0, 0.0) != 0:
        raise RuntimeError("multigrid: KSPChebyshevEstEigSet failed")


class VoxelMultigrid:
    """Operators, transfers and a configured CG + multigrid KSP for one voxel problem.

    V : DOLFINx P1 vector space on a voxel mesh of element edges ``spacing`` (mm)
    modulus_cells : (n_local_cells,) element moduli, MPa
    bcs : the DOLFINx DirichletBCs of the load case (fem.solve.loadcases)
    test : "uniaxial" or "axial"; pins : (2, 3) pin coordinates, mm (uniaxial)
    coarse_dofs : coarsen until a level has fewer DOF than this (solved directly);
        default :func:`coarse_limit` of the fine level's DOF
    exact : level 1 as the exact Galerkin product of the voxels (8 moduli per element)
        instead of rediscretised with their mean modulus; elements with a constrained
        child are exact either way
    split : coarse levels with one node copy per piece of bone in each node's support
        (fem.solve.coarse_pieces), so that the coarse space does not tie together
        trabeculae that do not touch
    pieces : with ``split``, above level 1 one coarse element per connected piece of the
        children of a cell (exact node connectivity); else one element per cell. None:
        :data:`PIECES`, read at each call (benchmarks switch it for the solvers' callers)
    keep_levels : keep every level's arrays (``slabs[i].level``, node coordinates) and the
        transfers' arguments after the set-up, for :meth:`transfer_matrices` and tests;
        otherwise they are released once the operators are built (the solve does not
        need them: 30-40 B per fine DOF, docs/benchmark.md)
    """

    def __init__(self, V, spacing, modulus_cells, poisson, bcs, test, pins=None,
                 coarse_dofs=None, max_levels=MAX_LEVELS, exact=False, split=SPLIT,
                 pieces=None, keep_levels=False):
        comm = V.mesh.comm
        self.comm = comm
        pieces = PIECES if pieces is None else pieces
        h = np.asarray(spacing, dtype=float)
        cells, lattice, node_ijk = fine_cells(V, h)
        fine_bcs = np.unique(np.concatenate([bc.dof_indices()[0] for bc in bcs])).astype(np.int64)
        imap = V.dofmap.index_map
        ke = voxel_kernel.hex_stiffness(h, poisson)[None]
        self.fine = LevelOperator(imap, [(cells, np.asarray(modulus_cells, float)[:, None], ke)], fine_bcs)
        if coarse_dofs is None:
            coarse_dofs = coarse_limit(3 * imap.size_global)
        pins_ijk = None if pins is None else np.rint(np.asarray(pins) / h).astype(np.int64)

        # Coarse levels from the gathered fine voxels (every rank the same).
        top = int(comm.allreduce(int(node_ijk[:, 2].max(initial=0)), op=MPI.MAX))
        fixed = [Constraints(top, test, pins_ijk)]
        levels = [first_coarse(np.concatenate(comm.allgather(lattice)),
                               np.concatenate(comm.allgather(np.asarray(modulus_cells, float))),
                               h, poisson, fixed[0], exact, split)]
        while True:
            fixed.append(fixed[-1].coarser(int(levels[-1].cells[:, 2].max()) + 1))
            if levels[-1].dofs <= coarse_dofs or len(levels) >= max_levels - 1:
                break
            if min(levels[-1].dims) < 4:
                break
            if fixed[-1].pins is not None and np.array_equal(*(fixed[-1].pins >> 1)):
                break       # the two pins would merge: the coarse problem would be singular
            levels.append(next_coarse(levels[-1], fixed[-1], split=split, pieces=pieces))
        self.slabs = []
        for lvl, con in zip(levels, fixed[1:]):
            self.slabs.append(slab_level(comm, lvl, con))

        # Transfers: fine -> level 1 -> ... ; PETSc numbers levels from the coarsest (0).
        self._transfer_args, self._contexts, self.transfers = [], [], []
        fine_ijk, fine_bc, n_global = node_ijk[: imap.size_local], self.fine.bcs_owned, 3 * imap.size_global
        holder = None
        if split:     # a local voxel holding each owned fine node: its piece's parents
            which = np.full(imap.size_local + imap.num_ghosts, -1, dtype=np.int64)
            which[cells.ravel()] = np.repeat(np.arange(len(cells)), 8)
            if which[: imap.size_local].min(initial=0) < 0:
                raise RuntimeError("multigrid: an owned node outside this rank's voxels")
            holder = self.slabs[0].level.element_at(lattice[which[: imap.size_local]] >> 1)
        for i, sl in enumerate(self.slabs):
            args = (fine_ijk, fine_bc, n_global, sl.level, sl.op.n_owned, sl.bc_global,
                    holder if split else None)
            if split and i + 1 < len(self.slabs):      # the next level's element of each node's piece
                lo = sl.imap.local_range[0]
                holder = self.slabs[i + 1].level.child_parent[
                    node_holders(sl.level)[lo: lo + sl.imap.size_local]]
            self._transfer_args.append(args)
            ctx = transfer.Transfer(comm, *args)
            self._contexts.append(ctx)
            self.transfers.append(ctx.as_petsc())
            fine_ijk = sl.node_ijk[: sl.imap.size_local]
            fine_bc, n_global = sl.op.bcs_owned, sl.level.dofs
        self.ops = [self.fine.as_petsc(comm)] + [sl.op.as_petsc(comm) for sl in self.slabs[:-1]]
        self.coarse = coarse_matrix(comm, self.slabs[-1])
        self._dofs = [sl.level.dofs for sl in self.slabs]
        last = self.slabs[-1]
        self._coarse_xyz = last.node_ijk[: last.imap.size_local] * last.level.spacing
        if not keep_levels:
            self._transfer_args = None
            for sl in self.slabs:
                sl.level = sl.node_ijk = sl.bc_global = None

    @property
    def levels(self) -> int:
        return 1 + len(self.slabs)

    def level_dofs(self) -> list[int]:
        return [self.ops[0].getSize()[0]] + self._dofs

    def rhs(self, bcs) -> PETSc.Vec:
        """b = -(I - D) K g + D g for the prescribed displacements g of ``bcs``."""
        import dolfinx.la

        g = dolfinx.la.vector(self.fine.imap, bs=3)
        for bc in bcs:
            bc.set(g.array)
        n = self.fine.n_owned
        b = self.ops[0].createVecLeft()
        ba = b.getArray()
        ba[:] = -self.fine.apply_local(g.array[:n].copy(), constrained=False)
        ba[self.fine.bcs_owned] = g.array[self.fine.bcs_owned]
        return b

    def ksp(self, rtol, max_iterations, fixed=False) -> PETSc.KSP:
        """CG on the fine operator with the multigrid cycle as preconditioner (options
        under a prefix of its own, fem.solve.solver.options_prefix).

        fixed : the operators will not change (one linear solve): set the preconditioner
            up now and release what only its set-up needs (see below). Leave False where
            the caller changes the moduli and lets PETSc set the smoothers up again
            (fem.solve.nonlinear).
        """
        from fem.solve.solver import cg_options, options_prefix, rigid_body_modes

        ksp = PETSc.KSP().create(self.comm)
        ksp.setOptionsPrefix(options_prefix({**cg_options(rtol, max_iterations), **OPTIONS}))
        ksp.setOperators(self.ops[0])
        pc = ksp.getPC()
        pc.setType("mg")
        n = self.levels
        pc.setMGLevels(n)
        pc.setMGType(PETSc.PC.MGType.MULTIPLICATIVE)
        for depth in range(n - 1):                 # depth 0 = finest = PETSc level n - 1
            level = n - 1 - depth
            pc.setMGInterpolation(level, self.transfers[depth])
            pc.getMGSmoother(level).setOperators(self.ops[depth])
        # rigid-body modes of the coarsest level (for an AMG coarse solver)
        self.coarse.setNearNullSpace(rigid_body_modes(self._coarse_xyz, self.comm))
        pc.getMGCoarseSolve().setOperators(self.coarse)
        ksp.setFromOptions()
        if not fixed:
            return ksp
        # Set up now (smoothers, their eigenvalue estimates, the coarsest factorisation),
        # then drop each Chebyshev smoother's estimator: its Krylov work vectors (four
        # vectors of every level, 35 B per fine DOF) would otherwise be held through the
        # solve. The estimated bounds stay in the smoother, so the solve is unchanged.
        ksp.setUp()
        for level in range(1, n):
            _drop_estimator(pc.getMGSmoother(level))
        memory.release_free_heap()      # the estimators' vectors went back to the heap
        return ksp

    def transfer_matrices(self) -> list[PETSc.Mat]:
        """The transfers as AIJ matrices (the same P; for tests and P^T A P); needs
        ``keep_levels=True``."""
        if self._transfer_args is None:
            raise RuntimeError("multigrid: transfer_matrices() needs VoxelMultigrid(keep_levels=True)")
        return [transfer.interpolation_matrix(self.comm, *args) for args in self._transfer_args]

    def destroy(self):
        for m in self.ops + self.transfers + [self.coarse]:
            m.destroy()
        for ctx in self._contexts:
            ctx.free()
