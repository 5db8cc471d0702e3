"""The ``@pytest.mark.experiment`` marker's options, read without importing pytest.

pytest stores a decorator's mark on the function (``function.pytestmark``, a
list of objects with ``name``, ``args`` and ``kwargs``), so the engine can
read the marker of a function handed to ``run_experiment`` the way the
pytest layer reads an item's. Both validate through :func:`checked_options`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from pytest_crystallize.errors import ConfigurationError

__all__ = ["ITEM_OPTIONS", "MARKER", "MARKER_OPTIONS", "checked_options", "function_marker_options"]

#: The marker's name: ``@pytest.mark.experiment(...)``.
MARKER: Final = "experiment"
#: Every option the marker takes.
MARKER_OPTIONS: Final = frozenset({
    "replicates", "seed", "treatments", "hypotheses", "plugins", "alpha", "correction", "params",
    "max_replicates", "looks", "spending", "gate", "evaluators", "localns", "timeout", "design",
    "futility", "futility_spending", "power", "confirm", "adaptive",
})
#: Options the pytest layer reads itself rather than passing to the engine.
ITEM_OPTIONS: Final = frozenset({"gate", "confirm"})


def checked_options(marks: Iterable[Any], where: str) -> dict[str, Any]:
    """Merge the keyword options of ``marks``, outermost first, so the closest one wins.

    ``where`` names the experiment in messages. Raises ConfigurationError for
    positional arguments or an unknown option.
    """
    options: dict[str, Any] = {}
    for mark in marks:
        if mark.args:
            msg = (
                f"{where}: @pytest.mark.experiment takes keyword "
                f"arguments only (replicates=, seed=, ...), got {mark.args!r}"
            )
            raise ConfigurationError(msg)
        unknown = sorted(set(mark.kwargs) - MARKER_OPTIONS)
        if unknown:
            msg = (
                f"{where}: unknown @pytest.mark.experiment option "
                f"{unknown[0]!r}; known options: {', '.join(sorted(MARKER_OPTIONS))}"
            )
            raise ConfigurationError(msg)
        options.update(mark.kwargs)
    return options


def function_marker_options(function: Any, where: str) -> dict[str, Any]:
    """The experiment-marker options decorating ``function`` itself (``{}`` when it has none).

    Decorators closer to the ``def`` win, as under pytest.
    """
    marks = getattr(function, "pytestmark", None)
    if not isinstance(marks, Iterable):
        return {}
    ours = [m for m in marks if getattr(m, "name", None) == MARKER and isinstance(getattr(m, "kwargs", None), Mapping)]
    # pytest appends each decorator's mark, so the outermost decorator's mark comes last.
    return checked_options(reversed(ours), where)
