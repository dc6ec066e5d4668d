"""Helpers the tests share (imported as ``tests.support.<module>``); fixtures live in conftest.py."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
