"""Workspace-wide pytest set-up.

- Every package under src/ is importable straight from the source tree (after
  ``colcon build --symlink-install`` the installed packages resolve to the same files), so pure
  tests need no build step.
- Each pytest process reserves its own ROS_DOMAIN_ID (domain_coordinator, as ament's isolated
  tests do) and keeps discovery on this host, so parallel runs (colcon test runs packages in
  parallel) and other graphs on the machine never cross.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
import random
import sys

_SRC = Path(__file__).resolve().parent / 'src'
for _pkg in sorted(_SRC.iterdir()):
    if (_pkg / 'package.xml').is_file() and str(_pkg) not in sys.path:
        sys.path.insert(0, str(_pkg))

_domain_reservation: contextlib.AbstractContextManager | None = None


def _isolate_ros_domain() -> None:
    global _domain_reservation
    try:
        from domain_coordinator import domain_id
    except ImportError:  # no ROS environment: pure tests only
        os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 100)))
    else:
        _domain_reservation = domain_id(selector=lambda: random.randint(1, 100))
        os.environ['ROS_DOMAIN_ID'] = str(_domain_reservation.__enter__())
    if os.environ.get('ROS_DISTRO') == 'humble':
        os.environ['ROS_LOCALHOST_ONLY'] = '1'
    else:
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


_isolate_ros_domain()
