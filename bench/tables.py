"""Markdown building blocks of ``bench/REPORT.md``: tables, numbers, times and cells.

Shared by the report's CPU sections (``bench/report.py``) and its GPU section
(``bench/report_gpu.py``), so that both print a time, an iteration count or a table the
same way. Imports run one way: ``tables`` <- ``report_gpu`` <- ``report``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["code_list", "format_exponent", "format_number", "format_time", "markdown_table",
           "time_cell"]


def format_time(t: float | None) -> str:
    """Seconds with a unit that keeps three or four significant figures; ``-`` for ``None``.

    Examples
    --------
    >>> format_time(0.0123), format_time(2.5), format_time(None)
    ('12.3 ms', '2.50 s', '-')
    """
    if t is None:
        return "-"
    if t >= 100:
        return f"{t:.0f} s"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{1e3 * t:.1f} ms"
    return f"{1e6 * t:.0f} us"


def format_number(v: float | None, digits: int = 3) -> str:
    """An integer as such, any other float to ``digits`` significant figures; ``-`` for ``None``.

    Examples
    --------
    >>> format_number(7.0), format_number(12.345), format_number(None)
    ('7', '12.3', '-')
    """
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.{digits}g}"
    return str(int(v))


def format_exponent(p: float | None) -> str:
    """A fitted growth exponent to two decimals; ``-`` for ``None``."""
    return "-" if p is None else f"{p:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table, and a blank line after it.

    Examples
    --------
    >>> markdown_table(["a", "b"], [["1", "2"]])
    ['| a | b |', '|---|---|', '| 1 | 2 |', '']
    """
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


def time_cell(r: dict) -> str:
    """A solve's median time and, in brackets, its iterations; the reason in bold unless it
    converged.

    Examples
    --------
    >>> time_cell({"median": 0.25, "iterations": 12, "reason": "MAX_ITERATIONS"})
    '250.0 ms (12) **MAX_ITERATIONS**'
    """
    cell = f"{format_time(r['median'])} ({format_number(r.get('iterations'))})"
    reason = str(r.get("reason") or "")
    if reason and not reason.startswith("CONVERGED"):
        cell += f" **{reason}**"
    return cell


def code_list(items: Iterable[str], most: int | None = None) -> str:
    """``items`` as comma-separated code spans, the first ``most`` of them and `` ...`` after.

    Examples
    --------
    >>> code_list(["a", "b", "c"], most=2)
    '`a`, `b` ...'
    """
    items = list(items)
    shown = items if most is None else items[:most]
    more = most is not None and len(items) > most
    return ", ".join(f"`{item}`" for item in shown) + (" ..." if more else "")
