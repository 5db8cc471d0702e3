"""Tables: columns with a header and an alignment, rows of cells already formatted; as text or Markdown.

A :class:`Table` only lays cells out: every column is as wide as its widest
cell (the header included), columns are two spaces apart and trailing blanks
are cut. Formatting the numbers is the caller's business, done before the
table is built, so nothing is computed while lines are written::

    >>> table = Table((Column("metric"), Column("n", align="right")), (("accuracy", "40"), ("loss", "8")))
    >>> table.lines(indent="  ")
    ['  metric     n', '  accuracy  40', '  loss       8']

:meth:`Table.markdown` lays the same cells out as a GitHub-flavoured
Markdown table, for a CI job's summary page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["Align", "Column", "Table", "escape_markdown"]

#: How a column places a cell narrower than the column.
Align = Literal["left", "right"]
_GAP: Final = "  "
#: Characters Markdown could read as markup (emphasis, links, code, HTML, table cells), escaped by a backslash.
_MARKDOWN_SPECIAL: Final = frozenset("\\`*_[]<>|~#")


def escape_markdown(text: str) -> str:
    r"""``text`` as literal Markdown: every character that could be read as markup is backslash-escaped.

    >>> print(escape_markdown("p_value [a|b]"))
    p\_value \[a\|b\]
    """
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in text)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a :class:`Table`: its header and how its cells align."""

    header: str
    align: Align = "left"


@dataclass(frozen=True, slots=True)
class Table:
    """Columns and rows of formatted cells (one cell per column); :meth:`lines` lays them out.

    Raises:
        ValueError: a row does not have one cell per column.

    """

    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        for number, row in enumerate(self.rows, start=1):
            if len(row) != len(self.columns):
                headers = ", ".join(c.header for c in self.columns)
                msg = (f"table row {number} has {len(row)} cell(s) for {len(self.columns)} column(s) "
                       f"({headers}): {row!r}")
                raise ValueError(msg)

    def without(self, header: str) -> Table:
        """A copy without the column headed ``header`` (the same columns if there is none)."""
        keep = [i for i, column in enumerate(self.columns) if column.header != header]
        return Table(tuple(self.columns[i] for i in keep), tuple(tuple(row[i] for i in keep) for row in self.rows))

    def lines(self, *, indent: str = "") -> list[str]:
        """The header line, then one line per row, each starting with ``indent``."""
        cells = [tuple(c.header for c in self.columns), *self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        pads = [str.rjust if c.align == "right" else str.ljust for c in self.columns]
        return [
            indent + _GAP.join(pad(cell, width) for pad, cell, width in zip(pads, row, widths, strict=True)).rstrip()
            for row in cells
        ]

    def markdown(self) -> list[str]:
        """The table in GitHub-flavoured Markdown: the header row, the alignment row, one row per row.

        Cells are escaped (:func:`escape_markdown`), so a ``|`` in a name
        cannot split a cell; an empty cell stays empty.
        """
        def row(cells: tuple[str, ...]) -> str:
            return "| " + " | ".join(escape_markdown(cell) for cell in cells) + " |"

        rule = "| " + " | ".join("---:" if c.align == "right" else "---" for c in self.columns) + " |"
        return [row(tuple(c.header for c in self.columns)), rule, *(row(r) for r in self.rows)]
