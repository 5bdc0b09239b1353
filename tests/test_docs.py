"""The commands in README.md and docs/ stay true (issue 18).

Every bonefem command line in a fenced sh block (``./bonefem ...``, ``./bonefem exec
[mpirun -n N] python3 -m fem ...``, ``bonefem ...`` inside a container) must parse with
the CLI it names: its subcommand exists and accepts its flags and values; repository
files it names (cases/, bench/) exist. Usage lines in backticks (``./bonefem solve IMAGE
[--voxel-size MM] ...``) may only use flags the subcommand has, and must not show a
required option as optional. Cheap: argparse only. With BONEFEM_SLOW=1 the commands that
need no user files (the demo, the foam case, info) are also run, into a temporary folder.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from fem import cli
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SUBCOMMANDS = set(cli._parser()._subparsers._group_actions[0].choices)


def _lines(text: str):
    """Lines of the fenced sh blocks, continuation lines joined."""
    for lang, body in FENCE.findall(text):
        if lang not in ("sh", "bash", "shell", "console"):
            continue
        body = re.sub(r"\\\n\s*", " ", body)
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ")
            if line and not line.startswith("#"):
                yield line


def _cli_args(tokens: list[str]) -> list[str] | None:
    """The bonefem CLI arguments of a command line, or None if it runs something else."""
    for i in range(len(tokens) - 1):
        if tokens[i] == "-m" and tokens[i + 1] == "fem":
            return tokens[i + 2:]
    for i in reversed(range(len(tokens) - 1)):
        t = tokens[i]
        if (t == "bonefem" or t.endswith("/bonefem")) and tokens[i + 1] in SUBCOMMANDS:
            return tokens[i + 1:]
    return None


def doc_commands():
    out = []
    for path in DOCS:
        for line in _lines(path.read_text()):
            if "bonefem" not in line and "-m fem" not in line:
                continue
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                tokens = line.split()
            out.append(pytest.param(tokens, id=f"{path.name}: {line[:70]}"))
    return out


def _parse(args, capsys):
    try:
        return cli._parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"bonefem {' '.join(args)}: {capsys.readouterr().err.strip()}")


@pytest.mark.parametrize("tokens", doc_commands())
def test_documented_command_parses(tokens, capsys):
    args = _cli_args(tokens)
    if args is None:
        # ./bonefem exec python3 SCRIPT ...: the script must exist
        scripts = [t for t in tokens if t.endswith(".py")]
        for s in scripts:
            assert (ROOT / s).exists(), f"{s} does not exist"
        return
    # a shell variable ($SLURM_NTASKS, "$CASE") stands for a value the shell fills in: a
    # number is valid wherever a number or a path is
    _parse([re.sub(r"^\$\{?\w+\}?$", "2", a) for a in args], capsys)
    for t in args:
        if re.match(r"^(cases|bench)/", t) and not t.endswith("/"):
            assert (ROOT / t).exists(), f"{t} does not exist"


def test_the_docs_hold_commands():
    # the extraction works: the README's first command and the runtime page's MPI one
    found = [" ".join(p.values[0]) for p in doc_commands()]
    assert "./bonefem run cases/demo.toml --jobs 2" in found
    assert any("mpirun -n 2 python3 -m fem run cases/foam.toml" in f for f in found)


# --- usage lines ------------------------------------------------------------------------

USAGE = re.compile(r"`(?:\./)?bonefem ([a-z]+)((?: [^`]*)?)`")


def usages():
    out = []
    for path in DOCS:
        for sub, rest in USAGE.findall(path.read_text()):
            if sub in SUBCOMMANDS and "-" in rest:
                out.append(pytest.param(sub, rest, id=f"{path.name}: {sub}{rest[:60]}"))
    return out


def _subparser(sub):
    return cli._parser()._subparsers._group_actions[0].choices[sub]


@pytest.mark.parametrize("sub,rest", usages())
def test_usage_lines_match_the_cli(sub, rest):
    actions = _subparser(sub)._actions
    flags = {o for a in actions for o in a.option_strings}
    optional = set(re.findall(r"\[(-[-\w]+)", rest))
    used = set(re.findall(r"(?:^|[\s\[])(--?[a-z][-\w]*)", rest))
    assert used <= flags, f"bonefem {sub} has no {sorted(used - flags)}"
    for a in actions:
        if a.required and a.option_strings:
            shown = set(a.option_strings) & used
            assert shown, f"bonefem {sub}: required {a.option_strings[0]} is not shown"
            assert not shown & optional, f"bonefem {sub}: required {a.option_strings[0]} shown as optional"


# --- running them -----------------------------------------------------------------------

slow = pytest.mark.skipif(not os.environ.get("BONEFEM_SLOW"),
                          reason="runs the documented commands (minutes): set BONEFEM_SLOW=1")


def runnable():
    """Documented CLI commands that need no user file: run, specimen and info on cases/."""
    out, seen = [], set()
    for p in doc_commands():
        tokens = p.values[0]
        args = _cli_args(tokens)
        if not args or args[0] not in ("run", "specimen", "info") or tokens[0] != "./bonefem":
            continue
        if not all((ROOT / t).exists() for t in args[1:] if t.endswith(".toml")):
            continue
        mpi = tokens[tokens.index("-n") + 1] if "mpirun" in tokens else None
        key = (tuple(args), mpi)
        if key not in seen:
            seen.add(key)
            out.append(pytest.param(args, mpi, id=" ".join(args)))
    return out


@slow
@pytest.mark.parametrize("args,mpi", runnable())
def test_documented_command_runs(args, mpi, tmp_path):
    args = list(args)
    if "-o" in args:
        args[args.index("-o") + 1] = str(tmp_path / "out")
    elif args[0] != "info":
        args += ["-o", str(tmp_path / "out")]
    cmd = [sys.executable, "-m", "fem", *args]
    if mpi:
        cmd = ["mpirun", "-n", mpi, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    if args[0] != "info":
        assert (tmp_path / "out" / "result.json").exists() or (tmp_path / "out").iterdir()
