"""Shared fixtures: where the real captures live.

``$WIRETICK_CAPTURES`` names a directory of ``*.pcap`` files (NASDAQ ITCH 5.0 over
MoldUDP64); without it, ``shared/captures/nasdaq-itch50`` next to the checkout.
Tests that need them are skipped, saying where they looked, when there are none.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: $WIRETICK_CAPTURES, else <workspace>/shared/captures/nasdaq-itch50 next to the repository checkout.
CAPTURES_DIR = Path(os.environ.get("WIRETICK_CAPTURES")
                    or Path(__file__).resolve().parents[2] / "shared" / "captures" / "nasdaq-itch50")


def _shared_captures() -> list[Path]:
    return sorted(CAPTURES_DIR.glob("*.pcap")) if CAPTURES_DIR.is_dir() else []


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """The shared NASDAQ ITCH 5.0 captures directory (skips when it is absent)."""
    if not _shared_captures():
        pytest.skip(f"shared captures not found: no *.pcap in {CAPTURES_DIR}")
    return CAPTURES_DIR


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``shared_capture`` runs once per shared capture file (a Path)."""
    if "shared_capture" in metafunc.fixturenames:
        files = _shared_captures()
        if files:
            metafunc.parametrize("shared_capture", files, ids=[f.name for f in files])
        else:
            metafunc.parametrize("shared_capture", [pytest.param(
                None, marks=pytest.mark.skip(reason=f"shared captures not found: no *.pcap in {CAPTURES_DIR}"))])
