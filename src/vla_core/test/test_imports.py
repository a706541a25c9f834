"""The core is pure: importing any of its modules pulls in neither ROS nor the heavy optional
libraries (OSQP and SciPy load only when an MPC is built)."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

PACKAGE = Path(__file__).resolve().parents[1]


def _last_line(code: str) -> str:
    """What ``code`` prints last, run in a fresh interpreter that sees only vla_core."""
    env = {**os.environ, 'PYTHONPATH': str(PACKAGE)}
    out = subprocess.run(
        [sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_every_core_module_imports_without_ros_torch_osqp_or_scipy() -> None:
    code = (
        'import importlib, pkgutil, sys, vla_core\n'
        'for m in pkgutil.walk_packages(vla_core.__path__, "vla_core."):\n'
        '    importlib.import_module(m.name)\n'
        'print(sorted(m for m in ("rclpy", "torch", "osqp", "scipy", "cv2") if m in sys.modules))\n'
    )
    assert _last_line(code) == '[]'


def test_building_an_mpc_loads_osqp() -> None:
    code = (
        'import sys, numpy as np\n'
        'from vla_core.control.mpc import JointMpc, MpcConfig\n'
        'JointMpc(MpcConfig(), -np.ones(2), np.ones(2), np.ones(2), np.ones(2))\n'
        'print("osqp" in sys.modules and "scipy" in sys.modules)\n'
    )
    assert _last_line(code) == 'True'
