"""A package builds alone (`colcon build --packages-up-to`) and imports from that install only.
Every package: `make check-builds` (tools/check_isolated_builds.py, minutes)."""

from __future__ import annotations

from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
import check_isolated_builds as builds


def test_the_data_package_builds_and_imports_alone() -> None:
    ok, _, output = builds.check('vla_data', 'ament_python')
    assert ok, output
