"""Machine-readable results: result.json, the resolved case, software versions."""

from __future__ import annotations

import errno
import json
import os
import platform
import tempfile
from pathlib import Path

import fem
from fem.errors import BonefemError


def versions() -> dict:
    """Versions of the software that computed a result."""
    import dolfinx
    import numpy
    import petsc4py
    from mpi4py import MPI
    from petsc4py import PETSc

    return {
        "bonefem": fem.__version__,
        "dolfinx": dolfinx.__version__,
        "petsc": ".".join(map(str, PETSc.Sys.getVersion())),
        "petsc4py": petsc4py.__version__,
        "mpi": MPI.Get_library_version().splitlines()[0].strip(),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def write_atomic(path, text: str) -> Path:
    """Write a text file through a temporary file and a rename, so a reader (or a
    killed run) never sees half a file, and a failed write leaves the old file as it
    was. Raises BonefemError naming the file when it cannot be written."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
            # Without this a crash soon after the rename can leave an empty file in
            # place of the old result on some file systems.
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private; results are ordinary files.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise BonefemError(f"{path}: cannot write ({write_problem(err)}); "
                               "results written before are intact") from None
        raise
    return path


def check_output_folder(outdir) -> None:
    """Raise BonefemError unless ``outdir`` is a folder, or one that can be created,
    that this process may write into. Creates nothing: called before a long solve, so
    a bad ``-o`` fails at once instead of after it."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise BonefemError(f"{outdir}: output path exists and is not a folder")
    existing = outdir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BonefemError(f"{outdir}: cannot create the output folder ({existing} is a file, "
                           "not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BonefemError(f"{outdir}: cannot create the output folder (no permission to write "
                           f"in {existing})")


def write_problem(err: OSError) -> str:
    """What went wrong with a write, in words a user can act on."""
    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EACCES: "no permission", errno.EPERM: "no permission",
               errno.EROFS: "the file system is read-only"}
    return reasons.get(err.errno, err.strerror or str(err))


def write_json(path, data: dict) -> Path:
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_case_toml(path, case_dict: dict) -> Path:
    import tomli_w

    header = "# Resolved case: every value bonefem used, defaults filled in. Units: mm, MPa.\n"
    return write_atomic(path, header + tomli_w.dumps(case_dict))
