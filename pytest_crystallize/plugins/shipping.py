"""Shipping the user's code to workers that cannot import it (a cluster's machines).

A remote worker has the installed packages (pytest-crystallize, numpy, the
user's installed project) but not the test modules, their ``conftest.py``
files or the helper modules beside them. :func:`pack` pickles an object with
cloudpickle and, while it does, notes every module whose functions or classes
the pickle refers to by name; those that are *not installed* (not the
standard library, not part of an installed distribution, not under
site-packages) are shipped as source, with every user module they import in
turn (through their globals and their ``import`` statements, so modules that
import each other travel together). :func:`unpack` runs on the worker: it
serves the shipped modules to ``import`` under their own names (so module
identity, module-level registries and mutual imports work as at home), then
unpickles the object, once per shipment.

Pickling those modules by value instead (``cloudpickle.register_pickle_by_value``)
fails on modules that import each other (``import b`` in ``a`` and ``import a``
in ``b`` recurse without end), hence the sources. ``__main__`` (a script, a
notebook) is pickled by value as cloudpickle always does.

A worker in the packing process itself (a ``LocalCluster(processes=False)``)
imports nothing shipped: its modules are already loaded, and an importer left
in ``sys.meta_path`` would replace them and serve their old sources to later
imports (a later ``pytest.main``) of that process.

A shipped module's module-level code runs again on the worker, as under the
``spawn`` start method: files it reads must exist there too.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.abc
import importlib.util
import io
import linecache
import os
import site
import sys
import sysconfig
import threading
import types
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.datasources import DataSource

if TYPE_CHECKING:
    from collections.abc import Iterable
    from importlib.machinery import ModuleSpec

__all__ = ["ShippedModule", "Shipment", "pack", "unpack", "user_module"]

#: Unpacked shipments a worker keeps (the object of each, by key).
_KEPT: Final = 8


@dataclass(frozen=True, slots=True)
class ShippedModule:
    """One module's source, to be imported under ``name`` on a worker."""

    name: str
    filename: str
    source: str
    is_package: bool

    @property
    def digest(self) -> str:
        """Identifies this version of the module's source."""
        return hashlib.sha256(f"{self.name}\0{self.filename}\0{self.source}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Shipment:
    """A pickled object and the user modules it needs: plain data that any worker can unpickle."""

    key: str
    modules: tuple[ShippedModule, ...]
    payload: bytes
    #: The process that packed it (see :func:`this_process`): there, nothing is shipped.
    origin: str = ""

    @property
    def module_names(self) -> tuple[str, ...]:
        """The names of the shipped modules."""
        return tuple(m.name for m in self.modules)


_TOKEN: Final = uuid.uuid4().hex


def this_process() -> str:
    """Names this process, distinct in a forked child (its pid) and a spawned one (a fresh token)."""
    return f"{os.getpid()}-{_TOKEN}"


# -- which modules are the user's ------------------------------------------------

def _pth_paths(directory: str) -> set[str]:
    """The directories ``.pth`` files in ``directory`` add to sys.path (editable installs)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for pth in Path(directory).glob("*.pth"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                for line in pth.read_text(encoding="utf-8").splitlines():
                    line = line.strip()
                    if line and not line.startswith(("#", "import ", "import\t")):
                        found.add(str(Path(directory, line).resolve()))
    return found


@cache
def _installed_roots() -> tuple[Path, ...]:
    """Where installed code is imported from: the standard library, site-packages and their ``.pth`` paths."""
    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages() if hasattr(site, "getsitepackages") else ())
    paths.add(site.getusersitepackages() if hasattr(site, "getusersitepackages") else None)
    roots = {str(Path(p).resolve()) for p in paths if p}
    for root in list(roots):
        roots |= _pth_paths(root)
    return tuple(Path(root) for root in sorted(roots))


def _editable_mappings() -> dict[str, Path]:
    """Top-level names that setuptools' editable installs map to their directories."""
    mappings: dict[str, Path] = {}
    for finder in sys.meta_path:
        module = sys.modules.get(getattr(finder, "__module__", "") or "")
        if module is not None and module.__name__.startswith("__editable__"):
            for top, where in dict(getattr(module, "MAPPING", {})).items():
                mappings[str(top)] = Path(str(where)).resolve()
    return mappings


def user_module(module: types.ModuleType) -> bool:
    """True for a module a worker with the same installed packages could not import by its name: it is shipped.

    Installed means imported by its own name from the standard library,
    site-packages or a directory an editable install added; the test modules,
    conftest.py files and helpers beside them are not.
    """
    name = module.__name__
    top = name.partition(".")[0]
    file = getattr(module, "__file__", None)
    if name == "__main__" or not file or not file.endswith(".py"):
        return False
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "pytest_crystallize":
        return False
    path = Path(file).resolve()
    relative = Path(*name.split("."))
    wanted = relative / "__init__.py" if path.name == "__init__.py" else relative.with_suffix(".py")
    if any(root / wanted == path for root in _installed_roots()):
        return False
    editable = _editable_mappings().get(top)
    return editable is None or not path.is_relative_to(editable)


# -- the client side: pack ---------------------------------------------------------

def _module_of(obj: object) -> str | None:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, DataSource):  # pickled as a reference to its module's attribute: the module must go too
        obj = obj.function
    if isinstance(obj, (types.FunctionType, type)):
        name = getattr(obj, "__module__", None)
        return name if isinstance(name, str) else None
    return None


def _imported_names(module: types.ModuleType, source: str) -> set[str]:
    """Absolute names of the modules ``module``'s source imports, at any depth (functions included)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    package = module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - node.level + 1] if node.level > 1 else parts
                base = ".".join([*parts, base] if base else parts)
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _with_parents(names: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def _ship(names: Iterable[str]) -> tuple[ShippedModule, ...]:
    """The user modules among ``names``, with every user module they import, in name order."""
    shipped: dict[str, ShippedModule] = {}
    pending = list(_with_parents(names))
    while pending:
        name = pending.pop()
        module = sys.modules.get(name)
        if name in shipped or module is None or not user_module(module):
            continue
        file = str(module.__file__)
        try:
            source = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # the worker must import it by itself, or unpickling says which module it lacks
        shipped[name] = ShippedModule(name, file, source, is_package=hasattr(module, "__path__"))
        referenced = {_module_of(value) for value in list(vars(module).values())}
        referenced.discard(None)
        found = {n for n in referenced if n is not None} | _imported_names(module, source)
        pending += [n for n in _with_parents(found) if n not in shipped]
    return tuple(shipped[name] for name in sorted(shipped))


def pack(obj: object) -> Shipment:
    """Pickle ``obj`` with cloudpickle and ship the user modules it refers to (see the module docstring)."""
    import cloudpickle

    seen: set[str] = set()

    class Recorder(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle is untyped
        def reducer_override(self, value: Any) -> Any:
            name = _module_of(value)
            if name is not None:
                seen.add(name)
            return super().reducer_override(value)

    buffer = io.BytesIO()
    Recorder(buffer, protocol=5).dump(obj)
    payload = buffer.getvalue()
    modules = _ship(seen)
    digest = hashlib.sha256(payload)
    for module in modules:
        digest.update(module.digest.encode())
    return Shipment(key=digest.hexdigest()[:24], modules=modules, payload=payload, origin=this_process())


# -- the worker side: unpack -------------------------------------------------------

class _ShippedImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves shipped modules to ``import``, ahead of the worker's own path; one per worker process."""

    def __init__(self) -> None:
        self.modules: dict[str, ShippedModule] = {}
        #: name -> digest of the source the module in sys.modules was executed from.
        self.loaded: dict[str, str] = {}

    def add(self, modules: Iterable[ShippedModule]) -> None:
        """Serve ``modules``; a module imported from another version of its source is imported afresh."""
        for module in modules:
            self.modules[module.name] = module
            if module.name in sys.modules and self.loaded.get(module.name) != module.digest:
                del sys.modules[module.name]
            # Tracebacks formatted on the worker show the user's source lines.
            lines = module.source.splitlines(keepends=True)
            linecache.cache[module.filename] = (len(module.source), None, lines, module.filename)

    def find_spec(
        self, fullname: str, path: object = None, target: types.ModuleType | None = None,
    ) -> ModuleSpec | None:
        shipped = self.modules.get(fullname)
        if shipped is not None:
            return importlib.util.spec_from_loader(
                fullname, self, origin=shipped.filename, is_package=shipped.is_package,
            )
        if any(name.startswith(f"{fullname}.") for name in self.modules):
            # A parent package that was not shipped (a namespace package at home): an empty one.
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        shipped = self.modules.get(module.__name__)
        if shipped is None:
            return
        module.__file__ = shipped.filename
        code = compile(shipped.source, shipped.filename, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # the user's own module, shipped by the user's own run
        self.loaded[module.__name__] = shipped.digest


_IMPORTER: Final = _ShippedImporter()
_LOCK: Final = threading.Lock()
_UNPACKED: OrderedDict[str, object] = OrderedDict()


def unpack(shipment: Shipment) -> Any:
    """The object of ``shipment``, importing its shipped modules first; unpickled once per worker process."""
    import pickle

    with _LOCK:
        if shipment.key in _UNPACKED:
            _UNPACKED.move_to_end(shipment.key)
            return _UNPACKED[shipment.key]
        if shipment.origin != this_process():
            if _IMPORTER not in sys.meta_path:
                sys.meta_path.insert(0, _IMPORTER)
            _IMPORTER.add(shipment.modules)
        obj = pickle.loads(shipment.payload)  # the client's own run sent it
        _UNPACKED[shipment.key] = obj
        while len(_UNPACKED) > _KEPT:
            _UNPACKED.popitem(last=False)
        return obj
