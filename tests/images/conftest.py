"""The image tier: what `make images` builds, read from its archives (the images run on
the real node in tests/e2e/test_images.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
