"""The local secret that signs pickled cache values, so a planted or foreign pickle is never loaded.

The secret is 32 random bytes in a file of the user's:
``$CRYSTALLIZE_CACHE_SECRET`` (a file path) when set, else
``$XDG_CONFIG_HOME/pytest-crystallize/cache-secret`` (``~/.config`` when
``XDG_CONFIG_HOME`` is not set). It is deliberately *not* kept in the cache
directory: a cache directory can arrive with a repository checkout or a CI
cache archive, and a secret arriving with it would vouch for whatever came
along. So entries made on another machine or account are verified against
another secret, fail, and are computed afresh.

The file is created with mode 0600 under a temporary name and hard-linked
into place, so processes starting at once agree on one secret and nobody
reads a half-written one. On POSIX it is used only when it is a regular file
of this user that no one else may read or write.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Final

from pytest_crystallize.errors import CacheError

__all__ = ["SECRET_ENV", "LocalSecret", "load_secret", "secret_path"]

#: Environment variable naming the secret's file (CI jobs that share a cache can share the secret too).
SECRET_ENV: Final = "CRYSTALLIZE_CACHE_SECRET"
SECRET_BYTES: Final = 32


def secret_path() -> Path:
    """Where the secret lives: ``$CRYSTALLIZE_CACHE_SECRET``, else under the user's config directory."""
    given = os.environ.get(SECRET_ENV)
    if given:
        return Path(given).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(config) / "pytest-crystallize" / "cache-secret"


def load_secret(path: Path | None = None) -> bytes:
    """The secret in ``path`` (default :func:`secret_path`), created when absent.

    Raises CacheError saying why it cannot be used (unwritable directory, a
    file others may read or write, a file of another user, a wrong size).
    """
    path = secret_path() if path is None else path
    if not path.exists():
        _create(path)
    try:
        status = os.lstat(path)
        if os.name == "posix":
            _check_private(path, status)
        with path.open("rb") as file:
            secret = file.read(SECRET_BYTES + 1)
    except OSError as exc:
        msg = f"the cache secret {str(path)!r} cannot be read ({exc})"
        raise CacheError(msg) from None
    if len(secret) != SECRET_BYTES:
        msg = (f"the cache secret {str(path)!r} holds {len(secret)} bytes, not {SECRET_BYTES}: delete it and "
               f"a new one is made (pickled cache entries signed with the old one are then computed again)")
        raise CacheError(msg)
    return secret


def _check_private(path: Path, status: os.stat_result) -> None:
    if not stat.S_ISREG(status.st_mode):
        msg = f"the cache secret {str(path)!r} is not a regular file (a link or a directory): remove it"
        raise CacheError(msg)
    if status.st_uid != os.getuid():
        msg = f"the cache secret {str(path)!r} belongs to another user: remove it, or set ${SECRET_ENV}"
        raise CacheError(msg)
    if status.st_mode & 0o077:
        msg = (f"the cache secret {str(path)!r} may be read or written by others (mode "
               f"{stat.S_IMODE(status.st_mode):o}): run chmod 600 on it")
        raise CacheError(msg)


def _create(path: Path) -> None:
    """Make the secret file atomically; losing a race to another process is fine."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(secrets.token_bytes(SECRET_BYTES))
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        msg = f"the cache secret {str(path)!r} cannot be created ({exc}); set ${SECRET_ENV} to a writable file path"
        raise CacheError(msg) from None


class LocalSecret:
    """The secret, loaded on first use: a callable returning it, or None when it cannot be used.

    :attr:`problem` then says why. Pickles without the secret itself, so a
    worker process loads it from its own machine's file.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.problem: str | None = None
        self._value: bytes | None = None
        self._loaded = False

    def __repr__(self) -> str:
        return f"LocalSecret({str(self.path or secret_path())!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]  # loaded again where it is used

    def __call__(self) -> bytes | None:
        """The secret, or None when it cannot be used (see :attr:`problem`)."""
        if not self._loaded:
            self._loaded = True
            try:
                self._value = load_secret(self.path)
            except CacheError as exc:
                self.problem = str(exc)
        return self._value
