"""Fixtures of the vla_sensors tests (helpers live in sensor_test_utils)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sensor_test_utils import write_video


@pytest.fixture
def video_30(tmp_path: Path) -> Path:
    """One second of 160x120 MJPG at 30 fps; frame i has grey level frame_level(i)."""
    return write_video(tmp_path / 'clip.avi', 30, 30.0)
