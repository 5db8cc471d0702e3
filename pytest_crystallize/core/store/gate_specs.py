"""Gate specs: which metrics are gated, which way is better, and the margin tolerated."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.errors import ConfigurationError

if TYPE_CHECKING:
    from pytest_crystallize.core.hypotheses import Hypothesis

__all__ = ["GateSpec", "check_gate_option", "gate_specs", "parse_margin"]

_BETTER_OF_DIRECTION: Final = {"maximize": "higher", "minimize": "lower", "higher": "higher", "lower": "lower"}
_SPEC_KEYS: Final = frozenset({"direction", "better", "margin", "test"})


def parse_margin(value: object, where: str) -> tuple[float, bool]:
    """``0.02`` -> ``(0.02, False)`` (absolute); ``"2%"`` -> ``(0.02, True)`` (of the saved mean)."""
    relative = isinstance(value, str) and value.strip().endswith("%")
    number: float = math.nan
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip().removesuffix("%"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    if not (math.isfinite(number) and number >= 0):
        msg = f"{where}: the margin must be a number >= 0 or a percentage such as '2%', got {value!r}"
        raise ConfigurationError(msg)
    return (number / 100.0 if relative else number), relative


@dataclass(frozen=True, slots=True)
class GateSpec:
    """How to gate one metric: which way is better, the margin tolerated, the test.

    ``margin=None`` takes the session's default margin; ``relative`` reads
    the margin as a fraction of the saved mean.
    """

    metric: str
    better: str
    margin: float | None = None
    relative: bool = False
    test: str = "auto"
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateSpec:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)


def _marker_spec(metric: str, value: object, where: str) -> GateSpec:
    if isinstance(value, str):
        value = {"direction": value}
    if not isinstance(value, Mapping) or not set(value) <= _SPEC_KEYS:
        msg = (f"{where}: gate={{{metric!r}: {value!r}}}: give 'maximize', 'minimize', None (not gated) or a "
               f"dict with keys {', '.join(sorted(_SPEC_KEYS))}")
        raise ConfigurationError(msg)
    better = _BETTER_OF_DIRECTION.get(str(value.get("direction", value.get("better"))))
    if better is None:
        msg = f"{where}: gate of metric {metric!r} needs direction 'maximize' or 'minimize', got {dict(value)!r}"
        raise ConfigurationError(msg)
    margin, relative = (None, False)
    if value.get("margin") is not None:
        margin, relative = parse_margin(value["margin"], f"{where}: gate of metric {metric!r}")
    test = value.get("test", "auto")
    from pytest_crystallize.core.stats import TESTS

    if test != "auto" and test not in TESTS:
        msg = f"{where}: gate of metric {metric!r}: unknown test {test!r}; use 'auto' or one of {', '.join(TESTS)}"
        raise ConfigurationError(msg)
    return GateSpec(metric, better, margin, relative, str(test), source="gate=")


def check_gate_option(value: object, where: str) -> Mapping[str, object]:
    """Validate a marker's ``gate=`` value (a mapping metric -> spec); return it."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        msg = f"{where}: gate= must map metric names to 'maximize' / 'minimize' / a dict, got {value!r}"
        raise ConfigurationError(msg)
    for metric, spec in value.items():
        if spec is not None:
            _marker_spec(metric, spec, where)
    return value


def gate_specs(hypotheses: Iterable[Hypothesis], gate: Mapping[str, object] | None, where: str) -> tuple[GateSpec, ...]:
    """The gated metrics: good directions from hypotheses, then the marker's ``gate=`` mapping.

    ``maximize``/``minimize`` hypotheses and ``no_worse`` and ``best`` ones (their
    ``better``) give a direction; a metric whose hypotheses disagree is not
    gated unless ``gate=`` says how. ``gate={"m": None}`` leaves ``m`` out.
    """
    found: dict[str, dict[str, str]] = {}
    for h in hypotheses:
        better = _BETTER_OF_DIRECTION.get(h.direction) or (h.better if h.direction in ("no_worse", "best") else None)
        if better is not None:
            found.setdefault(h.metric, {}).setdefault(better, h.label)
    specs = {
        metric: GateSpec(metric, better, source=f"hypothesis {label!r}")
        for metric, sides in found.items() if len(sides) == 1 for better, label in sides.items()
    }
    for metric, value in check_gate_option(gate, where).items():
        if value is None:
            specs.pop(metric, None)
        else:
            specs[metric] = _marker_spec(metric, value, where)
    return tuple(specs.values())
