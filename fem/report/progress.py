"""Progress of long work on rank 0: a tqdm bar on a terminal, plain lines otherwise
(a SLURM log has no terminal, and a bar's carriage returns would clutter it)."""

from __future__ import annotations

import sys


class Progress:
    """``with Progress(total, "trial") as p: ... p.update(postfix="cohort seed")``."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream=None):
        self.stream = stream or sys.stdout
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="job", file=self.stream)

    def write(self, line: str) -> None:
        """A log line that does not break the bar."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, file=self.stream, flush=True)

    def update(self, n: int = 1, postfix: str = "") -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(postfix)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
