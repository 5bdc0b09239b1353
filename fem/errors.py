"""User-facing errors: the CLI prints these without a traceback and exits non-zero."""


class BonefemError(Exception):
    """An error caused by the user's input (a case file, an image, an option)."""


class CaseError(BonefemError):
    """A case file that is malformed or has an invalid value.

    The message names the file, the key (dotted TOML path) and what was expected.
    """

    def __init__(self, path, key, message):
        self.path, self.key = str(path), key
        where = f"{self.path}: " if path else ""
        where += f"[{key}] " if key else ""
        super().__init__(f"{where}{message}")


class SolverError(BonefemError):
    """A linear solve that did not converge: never a result.

    ``reason`` is PETSc's converged reason (e.g. "DIVERGED_ITS"), or "" if unknown.
    """

    def __init__(self, message, reason=""):
        self.reason = reason
        super().__init__(message)
