"""The public namespace of pytest_crystallize.core.stats."""

from __future__ import annotations

import subprocess
import sys

import pytest_crystallize.core.stats as stats_api


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(stats_api) if not name.startswith(("_", "@"))}  # "@": assert rewriting
    public -= {"annotations"}  # from __future__
    assert set(stats_api.__all__) == public
    assert list(stats_api.__all__) == sorted(stats_api.__all__, key=lambda n: (not n.isupper(), n))


def test_contract_names() -> None:
    assert stats_api.DIRECTIONS == ("maximize", "minimize", "two-sided", "no_worse", "equivalent")
    assert stats_api.CORRECTIONS == ("holm", "bh", "bonferroni", "none")
    expected = {
        "welch_t",
        "student_t",
        "paired_t",
        "skew_corrected_t",
        "mann_whitney",
        "wilcoxon",
        "permutation",
        "bootstrap",
        "fisher_exact",
        "boschloo",
        "chi_square",
        "mcnemar",
        "farrington_manning",
        "tango",
        "auto",
    }
    assert set(stats_api.TESTS) == expected


def test_import_stays_light() -> None:
    code = (
        "import sys; import pytest_crystallize.core.stats; "
        "heavy = ('scipy', 'pandas', 'pyarrow', 'pytest', 'statsmodels'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
