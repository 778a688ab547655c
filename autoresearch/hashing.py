"""Hashing: the one way the tool fingerprints files (sha256).

`checksums()` per file (read-only files, checked before and after every run), `files_hash()`
over several files at once (the editable files' code hash: the same code is never run twice;
the harness' fingerprint: a tag's results belong to one harness), `contents_hash()` for files
already in memory (a Ray driver's shared files).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MISSING = b"<missing>"


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def checksums(root: Path, names) -> dict[str, str]:
    """name -> sha256 of the file's bytes, or "<missing>"."""
    out = {}
    for name in names:
        data = _read(Path(root) / name)
        out[name] = hashlib.sha256(data).hexdigest() if data is not None else MISSING.decode()
    return out


def contents_hash(files: dict[str, bytes], salt: str = "", length: int = 64) -> str:
    """One hash over named contents (None = missing), in name order, plus salt."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(name.encode() + b"\0" + (MISSING if data is None else data) + b"\0")
    h.update(salt.encode())
    return h.hexdigest()[:length]


def files_hash(root: Path, names, salt: str = "", length: int = 16) -> str:
    """One hash over the named files under root (a missing file counts as missing), plus salt."""
    return contents_hash({name: _read(Path(root) / name) for name in names}, salt, length)
