"""``ctx.artifacts``: the named files (bytes or text) a replicate's steps produce, and safe artifact names.

A name is a relative path that stays inside the artifact directory; the step
cache watches what is added and read through the context's observers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from pytest_crystallize.core.observers import READ_ARTIFACTS, active_observers, notify_read
from pytest_crystallize.errors import ConfigurationError

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext

__all__ = ["Artifacts", "check_artifact_name"]


def check_artifact_name(name: object) -> str:
    """Return ``name`` if it is a safe relative path, else raise ConfigurationError."""
    if not isinstance(name, str) or not name:
        msg = f"artifact names must be non-empty strings, got {name!r}"
        raise ConfigurationError(msg)
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        msg = f"artifact name {name!r} is an absolute path: use a relative name such as 'model.json'"
        raise ConfigurationError(msg)
    if ".." in posix.parts or ".." in windows.parts:
        msg = f"artifact name {name!r} would escape the artifact directory: remove '..'"
        raise ConfigurationError(msg)
    return name


class Artifacts(Mapping[str, "bytes | str"]):
    """``ctx.artifacts``: named files a step produces (bytes or text).

    Plugins such as ``ArtifactPlugin`` write them to disk after each step.
    """

    __slots__ = ("_items", "_owner")

    def __init__(self, owner: FrozenContext | None = None) -> None:
        self._items: dict[str, bytes | str] = {}
        self._owner = owner

    def add(self, name: str, data: bytes | str) -> None:
        """Store ``data`` under the relative file name ``name``."""
        if not isinstance(data, (bytes, str)):
            msg = (
                f"artifact {name!r} must be bytes or str, got {type(data).__name__}: "
                f"serialise it first (e.g. json.dumps(obj) or obj.to_parquet(buffer))"
            )
            raise ConfigurationError(msg)
        self._items[check_artifact_name(name)] = data
        owner = self._owner
        if owner is not None and owner.watched:
            for observer in active_observers(owner):
                observer.artifact(name, data)

    def snapshot(self) -> dict[str, bytes | str]:
        """Every artifact stored so far, by name (unseen by observers)."""
        return dict(self._items)

    def _seen(self) -> None:
        owner = self._owner
        if owner is not None and owner.watched:
            notify_read(owner, READ_ARTIFACTS, "", self.snapshot())

    def __getitem__(self, name: str) -> bytes | str:
        self._seen()
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        self._seen()
        return iter(self._items)

    def __len__(self) -> int:
        self._seen()
        return len(self._items)
