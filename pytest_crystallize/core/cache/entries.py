"""One cache entry on disk: a single file, written whole or not at all, checked before use.

An entry is one file: a magic line, the length of its JSON manifest (the
entry's key, what the step returned and did, as JSON nodes of
:mod:`~pytest_crystallize.core.cache.codec`, and where each binary part
lies), the manifest, then the parts back to back; it is read with a single
``read`` (:func:`pack_entry`, :func:`unpack_entry`). It is written under a temporary name in its final directory,
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

import hashlib
import hmac
import json
import os
import secrets
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from pytest_crystallize.core.cache.codec import PICKLE_SUFFIX
from pytest_crystallize.errors import CacheError

__all__ = ["ENTRY_FORMAT", "TEMPORARY_PREFIX", "pack_entry", "read_entry", "unpack_entry", "write_entry", "write_file"]

ENTRY_FORMAT: Final = 1
MAGIC: Final = b"pytest-crystallize cache entry\n"
_LENGTH: Final = struct.Struct("<Q")
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
    return size


def pack_entry(document: Mapping[str, Any], parts: Mapping[str, bytes]) -> bytes:
    """The bytes of an entry file: magic, manifest length, manifest (with the parts' places), parts."""
    places, offset = {}, 0
    for name, blob in parts.items():
        places[name] = [offset, len(blob)]
        offset += len(blob)
    manifest = json.dumps({**document, "parts": places}, allow_nan=False, separators=(",", ":")).encode()
    return b"".join([MAGIC, _LENGTH.pack(len(manifest)), manifest, *parts.values()])


def unpack_entry(blob: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and parts of an entry file's bytes; raises CacheError when they are not a whole entry."""
    start = len(MAGIC) + _LENGTH.size
    try:
        if not blob.startswith(MAGIC):
            msg = "no entry header"
            raise ValueError(msg)
        (length,) = _LENGTH.unpack_from(blob, len(MAGIC))
        manifest = json.loads(blob[start:start + length])
        data = memoryview(blob)[start + length:]
        parts = {}
        for name, (offset, size) in manifest.pop("parts").items():
            if offset < 0 or size < 0 or offset + size > len(data):
                msg = f"part {name!r} lies past the end"
                raise ValueError(msg)
            parts[name] = bytes(data[offset:offset + size])
    except (ValueError, TypeError, KeyError, AttributeError, struct.error) as exc:
        msg = f"not a whole cache entry ({type(exc).__name__}: {exc})"
        raise CacheError(msg) from None
    if not isinstance(manifest, dict):
        msg = "not a whole cache entry (its manifest is not an object)"
        raise CacheError(msg)
    return manifest, parts


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
    blob = pack_entry({**manifest, "format": ENTRY_FORMAT, "key": key, "signatures": signatures}, parts)
    return write_file(path, lambda file: file.write(blob))


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
    with path.open("rb") as file:
        blob = file.read()
    try:
        manifest, parts = unpack_entry(blob)
    except CacheError as exc:
        msg = f"cache entry {path.name!r}: {exc}"
        raise CacheError(msg) from None
    if manifest.get("format") != ENTRY_FORMAT or manifest.get("key") != key:
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
