"""Plugin managers: building them, registering plugins, loading installed ones.

Every manager the engine uses comes from :func:`make_plugin_manager`: our
hookspecs, the built-in defaults (``trylast``), then the given plugins in
order (later ones are called first, so they win ``firstresult`` hooks).
Every registration goes through :func:`register_plugins`, which rejects a
``@hookimpl`` whose name is no hook of ours (a misspelling would otherwise
be silently never called).
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Iterable, Sequence
from typing import Any, Final

import pluggy

from pytest_crystallize import hookspecs
from pytest_crystallize.errors import ConfigurationError
from pytest_crystallize.plugins.defaults import DEFAULTS, DEFAULTS_NAME

__all__ = [
    "ENTRY_POINT_GROUP",
    "WORKER_HOOKS",
    "entry_point_plugins",
    "implemented",
    "make_plugin_manager",
    "run_plugin_manager",
    "register_plugins",
    "worker_plugins",
]

#: The entry-point group installed packages use to provide plugins, e.g. in
#: pyproject.toml: ``[project.entry-points."crystallize.plugins"] mine = "my_pkg.plugin"``.
ENTRY_POINT_GROUP: Final = "crystallize.plugins"

#: Hooks that run where a replicate runs (maybe a worker process): the plugins
#: implementing them travel with the replicate runner.
WORKER_HOOKS: Final = (
    "crystallize_replicate_before",
    "crystallize_replicate_after",
    "crystallize_step_before",
    "crystallize_step_call",
    "crystallize_step_after",
)

_NAMED: Final = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_HOOK_NAMES: Final = tuple(sorted(name for name in vars(hookspecs) if name.startswith("crystallize_")))


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, not looking for hooks where none can be (a manager is made for every run).

    pluggy inspects every attribute of a plugin and of the hookspecs module;
    most are dunders every object has, or the module's imports, and skipping
    them halves the cost of a small run's setup. A misspelled hook name is
    still found (see :func:`register_plugins`).
    """

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        if name.startswith("__"):  # no hook is a dunder
            return None
        return super().parse_hookimpl_opts(plugin, name)

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> pluggy.HookspecOpts | None:
        if not name.startswith("crystallize_"):  # every hookspec of ours is named crystallize_*
            return None
        if module_or_class is not hookspecs:
            return super().parse_hookspec_opts(module_or_class, name)
        # Our hookspecs never change: read once per process, not once per run (pluggy only reads the options).
        if name not in _SPEC_OPTS:
            _SPEC_OPTS[name] = super().parse_hookspec_opts(module_or_class, name)
        return _SPEC_OPTS[name]


#: The options of each hookspec of ours, as pluggy read them (see _PluginManager.parse_hookspec_opts).
_SPEC_OPTS: dict[str, pluggy.HookspecOpts | None] = {}


def make_plugin_manager(plugins: Iterable[object] = ()) -> pluggy.PluginManager:
    """Return a PluginManager with our hookspecs, the built-in defaults and ``plugins`` registered.

    Raises ConfigurationError naming a plugin whose ``@hookimpl`` is no hook
    of ours or does not match its hook's signature.
    """
    manager = _PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(DEFAULTS, DEFAULTS_NAME)
    register_plugins(manager, plugins)
    return manager


def run_plugin_manager(plugins: Sequence[object]) -> pluggy.PluginManager:
    """The manager one run calls its hooks through: :func:`make_plugin_manager` of ``plugins``.

    A run without plugins (the built-in defaults only) shares one manager
    per process: building a manager was a third of a small run's fixed
    cost, and nothing registers into a run's manager once it is made.
    Code that registers plugins makes its own with :func:`make_plugin_manager`.
    """
    return make_plugin_manager(plugins) if plugins else _builtin_manager()


@functools.cache
def _builtin_manager() -> pluggy.PluginManager:
    return make_plugin_manager(())


def register_plugins(manager: pluggy.PluginManager, plugins: Iterable[object]) -> None:
    """Register each of ``plugins`` not registered yet, in order, and check their hook names."""
    for plugin in plugins:
        if manager.is_registered(plugin):
            continue
        _check_arguments(manager, plugin)
        try:
            manager.register(plugin)
        except pluggy.PluginValidationError as exc:
            msg = f"plugin {plugin!r} cannot be registered: {exc}"
            raise ConfigurationError(msg) from exc
        _check_hook_names(manager, plugin)


def _check_arguments(manager: pluggy.PluginManager, plugin: object) -> None:
    """Raise ConfigurationError naming a ``@hookimpl`` of ``plugin`` that asks for arguments its hook never passes."""
    for name in dir(plugin):
        if not name.startswith("crystallize_") or manager.parse_hookimpl_opts(plugin, name) is None:
            continue
        caller = getattr(manager.hook, name, None)
        spec = caller.spec if caller is not None else None
        if spec is None:
            continue  # an unknown name: _check_hook_names says so after registering
        try:
            parameters = inspect.signature(getattr(plugin, name)).parameters.values()
        except (TypeError, ValueError):
            continue  # pluggy checks what it can
        wanted = [p.name for p in parameters if p.default is p.empty and p.kind in _NAMED]
        unknown = [arg for arg in wanted if arg not in spec.argnames]
        if unknown:
            msg = (
                f"plugin {plugin!r}: its @hookimpl {name} asks for {', '.join(map(repr, unknown))}, which "
                f"the hook does not pass; it passes {', '.join(map(repr, spec.argnames))} (take any of them, "
                f"by these names)"
            )
            raise ConfigurationError(msg)


def _check_hook_names(manager: pluggy.PluginManager, plugin: object) -> None:
    """Raise ConfigurationError if ``plugin`` marks a method ``@hookimpl`` that no hookspec names."""
    for name, caller in vars(manager.hook).items():
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.optionalhook:
                manager.unregister(plugin)
                close = difflib.get_close_matches(name, _HOOK_NAMES, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"the hooks are: {', '.join(_HOOK_NAMES)}"
                msg = (
                    f"plugin {plugin!r} marks {name!r} with @hookimpl, but pytest-crystallize has no "
                    f"such hook: {hint} (mark it @hookimpl(optionalhook=True) if that is on purpose)"
                )
                raise ConfigurationError(msg)


def implemented(caller: Any) -> bool:
    """True when some plugin other than the built-in defaults implements the hook ``caller``."""
    return any(impl.plugin is not DEFAULTS for impl in caller.get_hookimpls())


def worker_plugins(manager: pluggy.PluginManager | None) -> tuple[object, ...]:
    """The plugins of ``manager`` implementing a per-replicate or per-step hook, in registration order.

    The built-in defaults are left out: every manager registers its own.
    """
    if manager is None:
        return ()
    wanted = {
        id(impl.plugin)
        for name in WORKER_HOOKS
        for impl in getattr(manager.hook, name).get_hookimpls()
        if impl.plugin is not DEFAULTS
    }
    return tuple(p for _, p in manager.list_name_plugin() if p is not None and id(p) in wanted)


def entry_point_plugins() -> list[object]:
    """Load the plugins of the ``crystallize.plugins`` entry points, sorted by entry-point name.

    An entry point may name a module or an object (registered as it is) or a
    class (instantiated with no arguments). Raises ConfigurationError naming
    an entry point that fails to load.
    """
    from importlib.metadata import entry_points

    plugins: list[object] = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            loaded = point.load()
            plugins.append(loaded() if isinstance(loaded, type) else loaded)
        except Exception as exc:
            msg = (
                f"the {ENTRY_POINT_GROUP!r} entry point {point.name!r} ({point.value}) failed to "
                f"load: {type(exc).__name__}: {exc}; fix or uninstall the package that provides it"
            )
            raise ConfigurationError(msg) from exc
    return plugins
