"""Shared fixtures: workspaces of the fake harness (tests/fakes.py, with the scripted agent, the study
maker and the event helpers) in real git repos. Every test gets its own temp folder and HOME."""

from __future__ import annotations

import pytest

from tests.fakes import make_fake_workspace


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    """No test reads or writes the real home folder (agents' logins, caches)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def ws(tmp_path):
    """The fake harness (X = 1, Y = 3: val_bpb 5.0) in a fresh workspace on tag t."""
    return make_fake_workspace(tmp_path / "ws")


@pytest.fixture
def ws_xy(tmp_path):
    """The fake harness with both knobs off (X = Y = 1: val_bpb 9.0): changes to X and to Y both improve."""
    return make_fake_workspace(tmp_path / "ws", allowance=20, Y=1.0)
