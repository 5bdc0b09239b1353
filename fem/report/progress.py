"""Progress of long work on rank 0: a tqdm bar on a terminal, plain lines otherwise
(a SLURM log has no terminal, and a bar's carriage returns would clutter it)."""

from __future__ import annotations

import os
import sys


def on_terminal(stream) -> bool:
    """Whether ``stream`` (stdout) reaches a terminal. Under mpirun it is always a
    pseudo-terminal of the launcher, whatever the launcher writes to (a SLURM log, a
    file), so there the launcher's own stdout decides; unknown means no."""
    if not getattr(stream, "isatty", lambda: False)():
        return False
    if not any(k in os.environ for k in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")):
        return True
    try:
        return os.readlink(f"/proc/{os.getppid()}/fd/1").startswith(("/dev/pts/", "/dev/tty"))
    except OSError:
        return False


class Progress:
    """``with Progress(total, "trial") as p: ... p.update(postfix="cohort seed")``."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream=None):
        self.stream = stream or sys.stdout
        self.bar = None
        if enabled and on_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="job", file=self.stream)

    def write(self, line: str, file=None) -> None:
        """A log line (to ``file``, default the bar's stream) that does not break the bar."""
        if self.bar is not None:
            self.bar.write(line, file=file or self.stream)
        else:
            print(line, file=file or self.stream, flush=True)

    def update(self, n: int = 1, postfix: str = "") -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(postfix)
            self.bar.update(n)

    def to(self, done: int, postfix: str = "") -> None:
        """Show ``done`` jobs finished in all, when others (e.g. other ranks) count them."""
        if self.bar is not None:
            self.update(done - self.bar.n, postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
