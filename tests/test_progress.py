"""Progress: a bar on a terminal, plain lines in a log."""

import io

from fem.report.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_without_a_terminal():
    out = io.StringIO()
    with Progress(3, "trial", stream=out) as p:
        p.write("job 1 done")
        p.update(postfix="x")
    assert out.getvalue() == "job 1 done\n"


def test_bar_on_a_terminal():
    out = Terminal()
    with Progress(2, "trial", stream=out) as p:
        p.update(postfix="early seed 0")
        p.update(postfix="late seed 0")
    text = out.getvalue()
    assert "trial" in text and "2/2" in text and "late seed 0" in text
