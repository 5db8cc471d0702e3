"""The one table renderer behind the summary, the gate and the command line: what a reader sees."""

from __future__ import annotations

import pytest

from pytest_crystallize.core.report.table import Column, Table


def test_every_column_is_as_wide_as_its_widest_cell_header_included() -> None:
    table = Table(
        (Column("condition"), Column("mean"), Column("verdict")),
        (("baseline", "0.5", ""), ("hot", "0.6125", "PASS")),
    )
    assert table.lines() == [
        "condition  mean    verdict",
        "baseline   0.5",
        "hot        0.6125  PASS",
    ]


def test_a_right_aligned_column_lines_numbers_up_on_their_last_digit() -> None:
    table = Table((Column("metric"), Column("n", align="right")), (("accuracy", "40"), ("loss", "8")))
    assert table.lines() == [
        "metric     n",
        "accuracy  40",
        "loss       8",
    ]


def test_a_header_wider_than_its_cells_sets_the_width() -> None:
    table = Table((Column("experiments", align="right"), Column("failed")), (("3", "0"),))
    assert table.lines() == ["experiments  failed", "          3  0"]


def test_the_indent_starts_every_line_and_trailing_blanks_are_cut() -> None:
    table = Table((Column("a"), Column("b")), (("long value", ""), ("x", "y")))
    assert table.lines(indent="  ") == [
        "  a           b",
        "  long value",
        "  x           y",
    ]


def test_a_table_without_rows_is_its_header_line() -> None:
    assert Table((Column("id"), Column("name"))).lines() == ["id  name"]
    assert Table((Column("id"), Column("name")), ()).lines(indent="  ") == ["  id  name"]


def test_empty_cells_keep_their_column_in_place() -> None:
    table = Table((Column("a"), Column("b"), Column("c")), (("", "", "z"), ("1", "", "")))
    assert table.lines() == ["a  b  c", "      z", "1"]


def test_without_drops_one_column_and_its_cells_and_the_rest_close_up() -> None:
    table = Table(
        (Column("metric"), Column("p no worse"), Column("status")),
        (("score", "-", "NO CHANGE"), ("latency", "-", "REGRESSED")),
    )
    assert table.without("p no worse").lines() == [
        "metric   status",
        "score    NO CHANGE",
        "latency  REGRESSED",
    ]
    assert table.without("not a column") == table


def test_a_row_with_the_wrong_number_of_cells_is_refused_naming_the_columns() -> None:
    with pytest.raises(ValueError, match=r"table row 2 has 1 cell\(s\) for 2 column\(s\) \(id, name\): \('x',\)"):
        Table((Column("id"), Column("name")), (("a", "b"), ("x",)))


def test_the_markdown_table_has_an_alignment_row_and_escapes_what_markdown_would_read() -> None:
    table = Table((Column("condition"), Column("n", align="right")), (("a|b", "40"), ("x_*y*", "")))
    assert table.markdown() == [
        "| condition | n |",
        "| --- | ---: |",
        r"| a\|b | 40 |",  # a pipe would split the cell
        r"| x\_\*y\* |  |",  # emphasis stays literal; an empty cell stays empty
    ]
