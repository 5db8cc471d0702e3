"""One cache entry on disk: a single file, written whole or not at all, checked before use.

An entry is a zip archive (stored, not compressed) of ``manifest.json`` (the
entry's key, what the step returned and did, as JSON nodes of
:mod:`~pytest_crystallize.core.cache.codec`) and the binary parts those
nodes name. It is written under a temporary name in its final directory,
flushed to disk (``fsync``) and renamed into place (``os.replace``, atomic),
so a reader, in any process, sees a whole entry or none; two writers of the
same entry both write the same content, and the last rename wins.

Every pickle part carries an HMAC-SHA256 signature made with the local
secret (:mod:`~pytest_crystallize.core.cache.secret`) over the entry's key,
the part's name and its bytes. :func:`read_entry` checks the key and every
signature before anything is decoded: a planted file, a file copied from
another machine or renamed to another key is refused and no pickle in it is
ever loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from pytest_crystallize.core.cache.codec import PICKLE_SUFFIX
from pytest_crystallize.errors import CacheError

__all__ = ["ENTRY_FORMAT", "MANIFEST", "TEMPORARY_PREFIX", "read_entry", "write_entry", "write_file"]

ENTRY_FORMAT: Final = 1
MANIFEST: Final = "manifest.json"
#: Files being written carry this prefix until they are renamed into place.
TEMPORARY_PREFIX: Final = ".tmp-"


def _signature(secret: bytes, key: str, name: str, blob: bytes) -> str:
    message = key.encode() + b"\0" + name.encode() + b"\0" + blob
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def write_file(path: Path, write: Any) -> int:
    """Write a file atomically: ``write(file)`` fills a temporary file, which is synced and renamed to ``path``.

    Returns the size written. The temporary file is removed if anything fails.
    """
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{secrets.token_hex(6)}-{path.name}")
    try:
        with temporary.open("wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
            size = file.tell()
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    if os.name == "posix":  # make the rename itself durable; an entry is still whole without it
        with contextlib.suppress(OSError):
            descriptor = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
    return size


def write_entry(
    path: Path, key: str, manifest: Mapping[str, Any], parts: Mapping[str, bytes], secret: bytes | None
) -> int:
    """Write the entry ``key`` to ``path`` atomically; return its size in bytes.

    Raises CacheError when a part is a pickle and there is no secret to sign it.
    """
    signatures = {}
    for name, blob in parts.items():
        if name.endswith(PICKLE_SUFFIX):
            if secret is None:
                msg = "a value needs pickle, and pickles are only stored signed, but there is no cache secret"
                raise CacheError(msg)
            signatures[name] = _signature(secret, key, name, blob)
    document = {**manifest, "format": ENTRY_FORMAT, "key": key, "signatures": signatures}
    text = json.dumps(document, allow_nan=False, separators=(",", ":"))

    def fill(file: Any) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(MANIFEST, text)
            for name, blob in parts.items():
                archive.writestr(name, blob)

    return write_file(path, fill)


def read_entry(
    path: Path, key: str, secret: Callable[[], bytes | None]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and parts of the entry at ``path``, checked: its key, its format, every signature.

    Raises CacheError when the file is not a whole entry of this key and
    format, or when a pickle part is unsigned or signed with another secret
    (nothing in the file is unpickled then). ``secret()`` is asked for only
    when the entry holds a pickle. Raises OSError when it cannot be read
    (removed meanwhile).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read(MANIFEST))
            parts = {name: archive.read(name) for name in archive.namelist() if name != MANIFEST}
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        msg = f"cache entry {path.name!r} is not a readable entry ({type(exc).__name__}: {exc})"
        raise CacheError(msg) from None
    if not isinstance(manifest, dict) or manifest.get("format") != ENTRY_FORMAT or manifest.get("key") != key:
        msg = f"cache entry {path.name!r} was not written for this key by this version"
        raise CacheError(msg)
    signatures = manifest.get("signatures")
    for name, blob in parts.items():
        if not name.endswith(PICKLE_SUFFIX):
            continue
        claimed = signatures.get(name) if isinstance(signatures, dict) else None
        known = secret() if isinstance(claimed, str) else None
        if known is None or not isinstance(claimed, str) or not hmac.compare_digest(
            _signature(known, key, name, blob), claimed
        ):
            msg = (f"cache entry {path.name!r} holds a pickle not signed with this machine's cache secret: "
                   f"refused without loading it")
            raise CacheError(msg)
    return manifest, parts
