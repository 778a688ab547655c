"""hashing.py: one way to fingerprint files; the formats recorded in existing ledgers stay the same."""

from __future__ import annotations

import hashlib

from autoresearch import hashing


def test_checksums_and_files_hash(tmp_path):
    (tmp_path / "a.py").write_text("A = 1\n")
    assert hashing.checksums(tmp_path, ["a.py", "gone.py"]) == {
        "a.py": hashlib.sha256(b"A = 1\n").hexdigest(), "gone.py": "<missing>"}
    h = hashing.files_hash(tmp_path, ["a.py"])
    # the format every recorded code hash and harness fingerprint used: name NUL bytes NUL, then the salt
    assert h == hashlib.sha256(b"a.py\0A = 1\n\0").hexdigest()[:16]
    assert hashing.files_hash(tmp_path, ["a.py"], salt="x") == hashlib.sha256(b"a.py\0A = 1\n\0x").hexdigest()[:16]
    (tmp_path / "a.py").write_text("A = 2\n")
    assert hashing.files_hash(tmp_path, ["a.py"]) != h
    assert hashing.contents_hash({"a.py": b"A = 2\n"})[:16] == hashing.files_hash(tmp_path, ["a.py"])
