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
from collections.abc import Callable, Iterable, Sequence
from types import FunctionType, MethodType, ModuleType
from typing import Any, Final, cast

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


class _HookExec:
    """Runs a hook's implementations for a manager: what its hook callers hold instead of the manager.

    pluggy's callers hold the manager's bound ``_hookexec``, a reference
    cycle (manager, relay, caller, manager) that only the garbage collector
    can free: a run's manager stayed alive until a collection found it, and
    each collection had a manager's worth of objects more to walk. Holding
    this instead, a manager is freed as soon as nobody uses it; its callers
    keep working as long as they are held.
    """

    __slots__ = ("inner",)

    def __init__(self) -> None:
        self.inner: Callable[..., Any] = _unset

    def __call__(self, hook_name: str, methods: Any, kwargs: Any, firstresult: bool) -> Any:
        return self.inner(hook_name, methods, kwargs, firstresult)


def _unset(*args: object) -> Any:
    msg = "a hook was called before its plugin manager was set up"
    raise RuntimeError(msg)


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, not looking for hooks where none can be (a manager is made for every run).

    pluggy inspects every attribute of a plugin and of the hookspecs module;
    most are dunders every object has, or the module's imports, and skipping
    them halves the cost of a small run's setup. A misspelled hook name is
    still found (see :func:`register_plugins`). Its hook callers hold a
    :class:`_HookExec`, not the manager (see there).
    """

    def __init__(self, project_name: str) -> None:
        self._exec = _HookExec()
        super().__init__(project_name)  # sets _inner_hookexec, kept by _exec (tracing replaces it the same way)

    @property  # pluggy's is a method; callers only call it, as they call this property's value
    def _hookexec(self) -> _HookExec:
        return self._exec

    @property
    def _inner_hookexec(self) -> Callable[..., Any]:
        return self._exec.inner

    @_inner_hookexec.setter
    def _inner_hookexec(self, value: Callable[..., Any]) -> None:
        self._exec.inner = value

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        if name.startswith("__"):  # no hook is a dunder
            return None
        method = _class_function(plugin, name)
        if method is not None:  # what pluggy would find, without its two getattr_static calls
            opts = getattr(method, f"{self.project_name}_impl", None)
            return cast("pluggy.HookimplOpts", opts) if isinstance(opts, dict) else None
        return super().parse_hookimpl_opts(plugin, name)

    def add_hookspecs(self, module_or_class: Any) -> None:
        if module_or_class is not hookspecs or self.hook.__dict__:
            super().add_hookspecs(module_or_class)
            return
        # Our hookspecs never change: pluggy's reading of each (its signature, by inspect) is done once per
        # process and the read specs shared; a caller holds its spec as read-only data.
        for name, spec in _hook_specs().items():
            caller = pluggy.HookCaller(name, self._hookexec)
            caller.spec = spec
            setattr(self.hook, name, caller)

    def add_defaults_of(self, template: pluggy.PluginManager) -> None:
        """Register the built-in defaults as ``template`` holds them, without reading the plugin again.

        ``template`` has our hookspecs and the defaults alone. Its hook
        implementations are shared, as they are read-only: registering the
        defaults was half the cost of a manager, and a run with plugins makes one.
        """
        self._name2plugin[DEFAULTS_NAME] = DEFAULTS
        for name, caller in vars(template.hook).items():
            for impl in caller.get_hookimpls():
                getattr(self.hook, name)._add_hookimpl(impl)

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> pluggy.HookspecOpts | None:
        if not name.startswith("crystallize_"):  # every hookspec of ours is named crystallize_*
            return None
        return super().parse_hookspec_opts(module_or_class, name)


def _class_function(plugin: object, name: str) -> FunctionType | None:
    """The plain function ``name`` of an ordinary instance's class, when the instance holds nothing by that name.

    Then it is what ``inspect.getattr_static`` finds; anything else (a class or
    module plugin, a metaclass, an instance attribute, a descriptor) is None
    and left to pluggy.
    """
    cls = type(plugin)
    if type(cls) is not type or cls is ModuleType or isinstance(plugin, type):
        return None
    try:
        held = object.__getattribute__(plugin, "__dict__")
    except AttributeError:  # slots only: a slot is a descriptor in the class, found below
        held = {}
    if name in held:
        return None
    for klass in cls.__mro__:
        found = klass.__dict__.get(name, _ABSENT)
        if found is not _ABSENT:
            return found if type(found) is FunctionType else None
    return None


_ABSENT: Final = object()


@functools.cache
def _hook_specs() -> dict[str, Any]:  # pluggy does not export the type of a read spec (HookSpec)
    """Each hookspec of ours as pluggy reads it (name -> spec), read once per process."""
    reader = pluggy.PluginManager(hookspecs.PROJECT)
    reader.add_hookspecs(hookspecs)
    return {name: caller.spec for name, caller in vars(reader.hook).items() if caller.spec is not None}


def make_plugin_manager(plugins: Iterable[object] = ()) -> pluggy.PluginManager:
    """Return a PluginManager with our hookspecs, the built-in defaults and ``plugins`` registered.

    Raises ConfigurationError naming a plugin whose ``@hookimpl`` is no hook
    of ours or does not match its hook's signature.
    """
    manager = _PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    if plugins:
        manager.add_defaults_of(_builtin_manager())
    else:
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
    """Register each of ``plugins`` not registered yet, in order, and check their hook names and arguments."""
    for plugin in plugins:
        if manager.is_registered(plugin):
            continue
        try:
            manager.register(plugin)
        except pluggy.PluginValidationError as exc:
            _check_arguments(manager, plugin)  # an argument the hook never passes: said in our words
            msg = f"plugin {plugin!r} cannot be registered: {exc}"
            raise ConfigurationError(msg) from exc
        # pluggy checked the positional arguments; what it read is reused for the rest (see _asks_for).
        impls = [(name, impl) for name, caller in vars(manager.hook).items() if not name.startswith("_")
                 for impl in caller.get_hookimpls() if impl.plugin is plugin]
        try:
            for name, impl in impls:
                spec = getattr(manager.hook, name).spec
                if spec is not None:
                    _check_asked(plugin, name, impl.function, spec.argnames)
            _check_hook_names(manager, plugin, impls)
        except ConfigurationError:
            manager.unregister(plugin)
            raise


def _check_arguments(manager: pluggy.PluginManager, plugin: object) -> None:
    """Raise ConfigurationError naming a ``@hookimpl`` of ``plugin`` that asks for arguments its hook never passes.

    For a plugin pluggy refused: reads the hooks from the plugin's attributes, as pluggy does.
    """
    for name in dir(plugin):
        if not name.startswith("crystallize_") or manager.parse_hookimpl_opts(plugin, name) is None:
            continue
        caller = getattr(manager.hook, name, None)
        spec = caller.spec if caller is not None else None
        if spec is not None:  # an unknown name: pluggy said what it found
            _check_asked(plugin, name, getattr(plugin, name), spec.argnames)


def _check_asked(plugin: object, name: str, function: Any, passed: Sequence[str]) -> None:
    """Raise ConfigurationError if ``function``, the hookimpl ``name``, asks for an argument not in ``passed``."""
    wanted = _asks_for(function)
    if wanted is None:
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return  # pluggy checks what it can
        wanted = [p.name for p in parameters if p.default is p.empty and p.kind in _NAMED]
    unknown = [arg for arg in wanted if arg not in passed]
    if unknown:
        msg = (
            f"plugin {plugin!r}: its @hookimpl {name} asks for {', '.join(map(repr, unknown))}, "
            f"which the hook does not pass; it passes {', '.join(map(repr, passed))} (take any of them, "
            f"by these names)"
        )
        raise ConfigurationError(msg)


def _asks_for(function: Any) -> list[str] | None:
    """The named parameters without a default of a plain function or method, read from its code; else None.

    What ``inspect.signature`` says, at a tenth of its cost (a run registers its plugins each time);
    None for anything else (a wrapped function, a callable object), which the caller inspects.
    """
    bound = isinstance(function, MethodType)
    plain = function.__func__ if bound else function
    if type(plain) is not FunctionType or hasattr(plain, "__wrapped__"):
        return None
    code = plain.__code__
    positional = code.co_varnames[:code.co_argcount]
    if bound and not positional:
        return None  # the instance goes into *args: let inspect say what is left
    required = len(positional) - len(plain.__defaults__ or ())
    keyword_only = code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]
    keyword_defaults = plain.__kwdefaults__ or {}
    first = max(code.co_posonlyargcount, 1 if bound else 0)  # positional-only ones and the instance are not named
    return [*positional[first:required], *(name for name in keyword_only if name not in keyword_defaults)]


def _check_hook_names(manager: pluggy.PluginManager, plugin: object, impls: Sequence[tuple[str, Any]]) -> None:
    """Raise ConfigurationError if ``plugin`` marks a method ``@hookimpl`` that no hookspec names.

    ``impls``: the plugin's ``(hook name, HookImpl)`` pairs.
    """
    for name, impl in impls:
        if not getattr(manager.hook, name).has_spec() and not impl.optionalhook:
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
