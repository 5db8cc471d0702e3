"""``python -m pytest_crystallize``: the ``crystallize`` command line (see :mod:`pytest_crystallize.cli`)."""

from __future__ import annotations

from pytest_crystallize.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
