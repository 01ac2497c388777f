"""Partner text shown to a person stays data: no markup, no control codes, no formulas."""

from __future__ import annotations

import io

from rich.console import Console

from cli.display import csv_cell, plain


def test_markup_and_escape_sequences_are_shown_as_text() -> None:
    hostile = "[bold]Art. 6[/bold] [/x] \x1b]8;;http://evil\x07link\x1b[31m red\x9b2J\x00"
    out = io.StringIO()
    Console(file=out, force_terminal=False, width=200).print(plain(hostile))
    assert out.getvalue().strip() == "[bold]Art. 6[/bold] [/x] ]8;;http://evillink[31m red2J"
    assert plain("two\nlines\tand a tab") == "two\nlines\tand a tab"


def test_cells_that_look_like_formulas_are_neutralised() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+49", "-2", "@SUM(A1)", "\tx", "\rx", "REF-1", 7)] == [
        "'=1+1", "'+49", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "REF-1", "7"]
