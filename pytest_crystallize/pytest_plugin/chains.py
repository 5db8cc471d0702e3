"""Chained experiments in a pytest run: each experiment's upstreams found, and run first.

An experiment parameter that takes ``upstream("experiment_train", ...)``
links its item to the experiment item of that name. What happens, in the
order of a run:

1. :func:`link`, at the start of ``pytest_collection_modifyitems`` (before
   ``-k``, ``-m`` or ``--lf`` deselect anything): each upstream is found among
   the collected experiments (the same module first; a node id when a name
   is not unique; an upstream left out by a node-id selection of its module
   is collected for the run). A missing or ambiguous upstream, or a cycle,
   is an error of the items involved, naming them; every other item runs.
   The items of one chain share an ``xdist_group`` mark.
2. :func:`schedule`, once every plugin has deselected: an upstream that the
   selection left out is put back (it runs, and is reported), and each
   upstream is moved before its first downstream.
3. The upstream item keeps its replicates' artifacts on its result; the
   downstream item hands :func:`upstream_results` to the runner, which binds
   them (see :mod:`pytest_crystallize.core.upstreams`).

Under pytest-xdist a downstream may run on another worker than its
upstream: the upstream's worker publishes its result, and the downstream
waits for it (see :mod:`~pytest_crystallize.pytest_plugin.handoff`). With
``--dist loadgroup`` the ``xdist_group`` mark keeps a chain on one worker,
so nothing waits (on pytest versions where loadgroup groups at all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import pytest

from pytest_crystallize.errors import ChainError

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.pytest_plugin.items import ExperimentItem

__all__ = [
    "GROUP_PREFIX", "Publisher", "forget_deselection", "handoff_root", "link", "release", "schedule", "started",
    "upstream_results",
]
#: Prefix of the ``xdist_group`` name of a chain's items.
GROUP_PREFIX: Final = "crystallize-chain-"


def link(
    experiments: Sequence[ExperimentItem], make_item: Callable[[ExperimentItem, str], ExperimentItem | None],
) -> list[ExperimentItem]:
    """Link each experiment item to its upstream items; return the items collected for the purpose.

    ``make_item(downstream, name)`` collects the experiment function ``name``
    of the downstream's module when the run left it out (or returns None).
    Errors (missing, ambiguous, cycles) go to the items' ``config_error``.
    """
    from pytest_crystallize.core.upstreams import upstreams_in

    known = list(experiments)
    added: list[ExperimentItem] = []
    pending = list(known)
    while pending:
        item = pending.pop(0)
        for link_ in upstreams_in(item.datasource_params).values():
            try:
                found = _find(item, link_.experiment, link_.target, known)
            except ChainError as exc:
                _fail(item, str(exc))
                continue
            if found is None:
                found = make_item(item, link_.experiment)
                if found is None:
                    _fail(item, _missing(item, link_.experiment, known))
                    continue
                known.append(found)
                added.append(found)
                pending.append(found)
            item.upstream_items[link_.experiment] = found
            if not any(d is item for d in found.downstream_items):
                found.downstream_items.append(item)
    _mark_cycles(known)
    _group(known)
    return added


def _find(item: ExperimentItem, name: str, target: Any, known: Sequence[ExperimentItem]) -> ExperimentItem | None:
    """The experiment item ``name`` refers to from ``item``, or None; ChainError when several match."""
    if target is not None:
        matches = [e for e in known if e.obj is target]
    elif "::" in name:
        matches = [e for e in known if e.nodeid == name or e.nodeid.endswith(f"/{name}")]
    else:
        matches = [e for e in known if e.name == name and e.path == item.path] or [
            e for e in known if e.name == name
        ]
    if len(matches) > 1:
        ids = ", ".join(repr(e.nodeid) for e in matches)
        msg = (
            f"experiment {item.name!r}: its upstream {name!r} is ambiguous ({ids}): name one by its "
            f"node id, upstream({matches[0].nodeid!r}, ...)"
        )
        raise ChainError(msg)
    return matches[0] if matches else None


def _missing(item: ExperimentItem, name: str, known: Sequence[ExperimentItem]) -> str:
    variants = [e.nodeid for e in known if e.originalname == name]
    if variants:
        return (
            f"experiment {item.name!r}: its upstream {name!r} is parametrized; name one of its items, "
            f"e.g. upstream({variants[0]!r}, ...) (its items: {', '.join(map(repr, variants))})"
        )
    return (
        f"experiment {item.name!r}: its upstream experiment {name!r} does not exist in this run: no "
        f"experiment of that name was collected (define it in {item.path.name} or name it by its node id, "
        f"upstream('tests/test_file.py::{name}', ...), and make sure the run collects its file)"
    )


def _fail(item: ExperimentItem, message: str) -> None:
    if item.config_error is None:
        item.config_error = message


def _mark_cycles(items: Sequence[ExperimentItem]) -> None:
    """Give every item on a cycle of upstreams an error that names the cycle."""
    done: set[int] = set()

    def visit(item: ExperimentItem, path: list[ExperimentItem]) -> None:
        if any(item is p for p in path):
            cycle = path[next(i for i, p in enumerate(path) if p is item):]
            names = " -> ".join(p.name for p in (*cycle, item))
            for member in cycle:
                _fail(member, (
                    f"experiment {member.name!r} is in a cycle of upstream experiments ({names}): none of "
                    f"them can run first; remove one of the upstream(...) links"
                ))
            return
        if id(item) in done:
            return
        for up in item.upstream_items.values():
            visit(up, [*path, item])
        done.add(id(item))

    for item in items:
        visit(item, [])


def _group(items: Sequence[ExperimentItem]) -> None:
    """Mark the items of each chain (linked in either direction) with one ``xdist_group``.

    Only where pytest-xdist is loaded: it registers the mark, which is unknown
    (a warning, an error under ``--strict-markers``) without it.
    """
    if not items or not items[0].config.pluginmanager.hasplugin("xdist"):
        return
    parent: dict[int, ExperimentItem] = {}

    def root(item: ExperimentItem) -> ExperimentItem:
        while id(item) in parent:
            item = parent[id(item)]
        return item

    for item in items:
        for up in item.upstream_items.values():
            a, b = root(item), root(up)
            if a is not b:
                parent[id(a)] = b
    for item in items:
        if item.upstream_items or item.downstream_items:
            item.add_marker(pytest.mark.xdist_group(name=f"{GROUP_PREFIX}{root(item).name}"))


def schedule(items: list[pytest.Item], is_experiment: Callable[[pytest.Item], bool]) -> list[ExperimentItem]:
    """Put upstreams the selection left out back into ``items``, each before its first downstream.

    The order of everything else is kept. Returns the items put back.
    """
    selected = {id(item) for item in items}
    placed: set[int] = set()
    ordered: list[pytest.Item] = []
    added: list[ExperimentItem] = []

    def place(item: pytest.Item, path: tuple[int, ...]) -> None:
        if id(item) in placed or id(item) in path:  # placed already, or a cycle (an error already)
            return
        if is_experiment(item):
            for up in item.upstream_items.values():  # type: ignore[attr-defined]  # an ExperimentItem
                if id(up) not in selected and id(up) not in placed:
                    added.append(up)
                place(up, (*path, id(item)))
        placed.add(id(item))
        ordered.append(item)

    for item in list(items):
        place(item, ())
    items[:] = ordered
    return added


def forget_deselection(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    """Take ``items`` (put back to run) out of the terminal's count of deselected items."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    deselected = getattr(reporter, "stats", {}).get("deselected")
    if isinstance(deselected, list):
        deselected[:] = [d for d in deselected if not any(d is item for item in items)]


def handoff_root(config: pytest.Config) -> Path | None:
    """Where upstream results are handed between pytest-xdist workers; None outside a worker."""
    if not hasattr(config, "workerinput"):
        return None
    # Each worker's base temporary directory is inside the run's: that one is shared.
    return Path(config._tmp_path_factory.getbasetemp()).parent / "crystallize-chains"  # type: ignore[attr-defined]


def upstream_results(item: ExperimentItem) -> dict[str, ExperimentResult]:
    """The results of ``item``'s upstream items, keyed as its ``upstream(...)`` names them.

    An upstream that ran in this process gives its result; on a pytest-xdist
    worker, one that did not waits for the worker that runs it. Raises
    ChainError naming the upstream that has no result.
    """
    from pytest_crystallize.pytest_plugin.handoff import published

    root = handoff_root(item.config)
    out: dict[str, ExperimentResult] = {}
    for name, up in item.upstream_items.items():
        if up.result is not None:
            out[name] = up.result
        elif root is not None and not up.ran:
            out[name] = published(root, up.nodeid, item.name)
        else:
            msg = (
                f"experiment {item.name!r} takes outputs of its upstream {up.nodeid!r}, which has no result: "
                f"{_no_result(up)}"
            )
            raise ChainError(msg)
    return out


def _no_result(item: ExperimentItem) -> str:
    """Why the upstream ``item`` has no result, and how to give it one (here, or published under xdist)."""
    if item.config_error is not None:
        return "it is defined wrongly (see its error)"
    if item.ran:
        return "it failed before finishing its run (see its report)"
    return (
        f"it did not run in this session (skipped, or its setup failed: see its report); let it run in the same "
        f"session: remove what skips it, and if you select by name, select it too (add 'or {item.name}' to -k); "
        f"outputs saved by an earlier run are not read"
    )


def started(item: ExperimentItem) -> None:
    """On a pytest-xdist worker: say that this worker runs the upstream ``item`` now."""
    root = handoff_root(item.config)
    if root is not None:
        from pytest_crystallize.pytest_plugin.handoff import started as mark_started

        mark_started(root, item.nodeid)


class Publisher:
    """Publishes each upstream experiment's result as its item ends, for downstreams on other workers.

    Registered by the session object on a pytest-xdist worker that collected
    a chain; lives as long as the worker's session. A hook, not the item's
    own teardown: an upstream that is skipped or errors at setup publishes
    why it has no result too, so no downstream waits for it in vain.
    """

    @pytest.hookimpl
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """Publish ``item``'s result (or why it has none) if it has downstream experiments."""
        downstream = getattr(item, "downstream_items", None)
        root = handoff_root(item.config)
        if not downstream or root is None:
            return
        from pytest_crystallize.pytest_plugin.handoff import publish

        upstream = cast("ExperimentItem", item)  # only experiment items have downstreams
        publish(root, upstream.nodeid, upstream.result, _no_result(upstream))


def release(item: ExperimentItem) -> None:
    """After ``item`` ran: drop the artifacts of each upstream none of whose downstreams is left to run."""
    import dataclasses

    for up in item.upstream_items.values():
        waiting = [d for d in up.downstream_items if not d.ran and d.config_error is None]
        if not waiting and up.result is not None and up.result.artifacts is not None:
            up.result = dataclasses.replace(up.result, artifacts=None)
