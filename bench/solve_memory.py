"""Where the memory of one matrix-free solve goes, stage by stage (one rank).

    ./bonefem exec python3 bench/solve_memory.py bench/out/real/std-k1.npz

Takes a saved case of bench/real_bone.py (mask, fraction, spacing) and runs what
bench/solver.py ``one`` runs for the ``matfree`` method (uniaxial compression, rtol 1e-7),
split into stages: the voxel grid, DOLFINx's mesh, the function spaces and boundary
conditions, the multigrid hierarchy, the KSP set-up (smoothers, eigenvalue estimates,
coarsest factorisation), the CG solve and the post-processing. Each stage prints the
resident memory after it (VmRSS) and its peak (VmHWM, reset before the stage through
``/proc/self/clear_refs``), in MiB and bytes per DOF. Memory does not depend on the load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.grid_memory import _status  # noqa: E402


def live_mib() -> float:
    """Bytes malloc has handed out and not had back (glibc mallinfo2: heap in use plus
    mmapped blocks), MiB: what the process holds, where VmRSS also counts freed heap
    that glibc keeps."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                   "usmblks", "fsmblks", "uordblks", "fordblks",
                                                   "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    m = libc.mallinfo2()
    return (m.uordblks + m.hblkhd) / 2 ** 20


def profile(path: Path, rtol: float) -> list[dict]:
    import numpy as np
    from mpi4py import MPI

    from bench.solver import POISSON, STRAIN
    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve import elasticity, memory, solver
    from fem.solve.loadcases import pin_points
    from fem.solve.multigrid import VoxelMultigrid
    from fem.specimen.load import Specimen

    comm = MPI.COMM_WORLD
    rows, state = [], {}

    def stage(name, fn):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        t0 = time.perf_counter()
        fn()
        rows.append({"stage": name, "rss": _status("VmRSS"), "peak": _status("VmHWM"), "live": live_mib(),
                     "s": time.perf_counter() - t0})

    def load():
        data = np.load(path)
        state["spec"] = Specimen(data["mask"], tuple(data["spacing"]), 10000.0,
                                 fraction=data["fraction"].astype(float))

    def grid():
        state["grid"] = g = voxel_grid(state["spec"].mask, state["spec"].spacing)
        state["meta"] = {"extent": g.extent, "pins": pin_points(g.points), "spacing": g.spacing}
        state["E"] = state["spec"].element_modulus(g)
        del state["spec"]

    def mesh():
        g = state.pop("grid")
        state["msh"], original = create_dolfinx_mesh(comm, g.points, g.cells)
        state["E"] = state["E"][original]

    def spaces():
        m = state["meta"]
        state["system"] = elasticity.compression_problem(
            state["msh"], state["E"], POISSON, "uniaxial", STRAIN, m["extent"][2], m["pins"])

    def hierarchy():     # what elasticity._solve_matfree does, in stages
        s = state["system"]
        memory.release_free_heap()
        state["mg"] = VoxelMultigrid(s.V, state["meta"]["spacing"], state["E"], POISSON, s.bcs,
                                     "uniaxial", state["meta"]["pins"])

    def setup():
        import dolfinx.fem

        mg = state["mg"]
        state["uh"] = dolfinx.fem.Function(state["system"].V)
        state["b"] = mg.rhs(state["system"].bcs)
        state["system"].bcs = None
        memory.release_free_heap()
        state["ksp"] = mg.ksp(rtol, 5000, fixed=True)

    def solve():
        state["stats"] = solver.solve(state["ksp"], state["b"], state["uh"].x.petsc_vec)

    def free():
        state.pop("ksp").destroy()
        state.pop("b").destroy()
        state.pop("mg").destroy()
        memory.release_free_heap()

    def post():
        import dolfinx.fem
        import dolfinx.la
        import ufl

        s, uh = state["system"], state["uh"]
        uh.x.scatter_forward()
        v = ufl.TestFunction(s.V)
        r = dolfinx.fem.assemble_vector(dolfinx.fem.form(
            ufl.inner(elasticity._sigma(uh, s.E, s.nu), ufl.sym(ufl.grad(v))) * s.dx))
        r.scatter_reverse(dolfinx.la.InsertMode.add)
        state["reaction"] = float(r.array[s.top_dofs].sum())
        elasticity.element_fields(uh, s.E, s.nu, s.dx, state["E"])

    for name, fn in [("load", load), ("voxel grid + moduli", grid), ("dolfinx mesh", mesh),
                     ("spaces + bcs", spaces), ("multigrid hierarchy", hierarchy),
                     ("ksp set-up", setup), ("CG solve", solve), ("free solver", free),
                     ("post-process", post)]:
        stage(name, fn)
    dofs = 3 * state["msh"].topology.index_map(0).size_global
    for r in rows:
        r["peak_B_per_dof"] = r["peak"] * 2 ** 20 / dofs
    return rows, {"dofs": dofs, "iterations": state["stats"].iterations,
                  "reaction_N": state["reaction"], "levels": None}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("case", help="a .npz case of bench/real_bone.py")
    p.add_argument("--rtol", type=float, default=1e-7)
    p.add_argument("-o", "--output", help="write the rows as JSON here")
    args = p.parse_args(argv)
    rows, info = profile(Path(args.case), args.rtol)
    print(f"{args.case}: {info['dofs']:,} DOF, {info['iterations']} CG iterations, "
          f"reaction {info['reaction_N']!r} N")
    print("| stage | MiB held after (malloc) | resident after | peak MiB | peak B/DOF | s |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['stage']} | {r['live']:,.0f} | {r['rss']:,.0f} | {r['peak']:,.0f} | {r['peak_B_per_dof']:.0f} | {r['s']:.1f} |")
    if args.output:
        Path(args.output).write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
