"""Memory estimate before assembly, so a model too large for the machine is refused
with numbers instead of being killed halfway (or swapping for hours)."""

from __future__ import annotations

# Bytes per DOF for the whole job (matrix with 81 nonzeros per row in 3x3 blocks, GAMG
# hierarchy, vectors, mesh): peak RSS measured by bench/solver.py (docs/benchmark.md),
# rounded up.
BYTES_PER_DOF = 2000.0
# The matrix-free multigrid solver (fem.solve.multigrid): mesh, vectors, transfers and
# coarse levels; peak RSS by bench/solver.py and bench/real_bone.py (docs/benchmark.md),
# rounded up.
BYTES_PER_DOF_MATFREE = 400.0
# The buckling analysis (fem.solve.buckling, [analysis] buckling) on top of the solve: the
# MUMPS Cholesky factor of K, K_G and the eigen solver's vectors. Peak RSS with it, 1 rank:
# real bone (the LHDL core, std-k3: 0.33 M DOF at 58.5 um) 2.60 GB, a 3 mm generated
# specimen (0.37 M DOF) 2.26 GB; less the base and the matrix-free solve's 0.4 kB per
# DOF: 6.5 and 5.3 kB per DOF, rounded up from the real bone's (docs/nonlinear.md). The
# factor's fill grows faster than the DOF count: models above about 1 M DOF are untested.
BYTES_PER_DOF_BUCKLING = 7000.0
BYTES_PER_RANK = 300e6   # Python, DOLFINx, PETSc and MPI themselves
# Building a voxel model on rank 0 before the solve, per bone voxel: the image, mask and
# connectivity labels, the grid arrays (fem.mesh.voxel.voxel_grid, built in chunks: about
# 80-140 B) and DOLFINx's create_mesh (about 500 B). Peak RSS of the process up to the
# DOLFINx mesh above the interpreter's own, by bench/grid_memory.py on the real core at
# 150^3-300^3 voxels: 633-664 B (docs/benchmark.md), rounded up. Mostly temporaries freed
# before the solve, so the job's peak is the larger of the build and the solve, not their sum.
BUILD_BYTES_PER_VOXEL = 700.0


def estimate_bytes(dofs: int, ranks: int, matfree: bool = False) -> float:
    """Estimated peak memory (bytes) of a solve with ``dofs`` DOF on ``ranks`` ranks,
    assembled (GAMG) or matrix-free."""
    per_dof = BYTES_PER_DOF_MATFREE if matfree else BYTES_PER_DOF
    return dofs * per_dof + ranks * BYTES_PER_RANK


def estimate_voxel_model(dofs: int, voxels: int, ranks: int, matfree: bool = True) -> tuple[float, float]:
    """Estimated peak memory (bytes) of a voxel model of ``voxels`` bone voxels and ``dofs``
    DOF on ``ranks`` ranks: ``(peak, build)``, the larger of building the mesh on rank 0
    and the solve (:func:`estimate_bytes`), and the build alone."""
    build = voxels * BUILD_BYTES_PER_VOXEL + ranks * BYTES_PER_RANK
    return max(build, estimate_bytes(dofs, ranks, matfree)), build


def available_bytes() -> float | None:
    """MemAvailable of this machine (bytes), or None where /proc/meminfo is missing."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        return None
    return None


def check(dofs: int, ranks: int, where: str = "model", matfree: bool = False) -> None:
    """Raise BonefemError if the estimate exceeds the available memory."""
    from fem.errors import BonefemError

    need, have = estimate_bytes(dofs, ranks, matfree), available_bytes()
    if have is not None and need > have:
        raise BonefemError(
            f"{where}: about {need / 1e9:.1f} GB needed for {dofs / 1e6:.2f} M DOF on {ranks} "
            f"rank(s), {have / 1e9:.1f} GB available; use a smaller region or coarser voxels, run "
            "on a bigger machine, or set solver.memory_check = false to try anyway")


def release_free_heap() -> None:
    """Give the heap pages malloc holds free back to the system (glibc ``malloc_trim``).

    Building the DOLFINx mesh frees about 500 MB at 4.6 M DOF that glibc keeps in its
    heap, and so do the multigrid set-up's temporaries and the Chebyshev estimators;
    the pages stay resident, so the solve's peak would count them on top of what it
    holds (bench/solve_memory.py, docs/benchmark.md). Called between the solver's
    stages; it takes milliseconds. Does nothing where there is no glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
