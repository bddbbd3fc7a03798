"""Fixtures for the qdht-lint tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdht_lint.engine import Linter

from ._support import FIXTURE_SPEC, write_spec


@pytest.fixture(scope="session")
def linter() -> Linter:
    return Linter(FIXTURE_SPEC)


@pytest.fixture
def spec_copy(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "spec")
