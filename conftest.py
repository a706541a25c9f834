"""Lets pytest import every package under src/ straight from the source tree.

After `colcon build --symlink-install` the installed packages resolve to the same files; this only
spares pure-Python tests a build step.
"""

from pathlib import Path
import sys

_SRC = Path(__file__).resolve().parent / 'src'
for _pkg in sorted(_SRC.iterdir()):
    if (_pkg / 'package.xml').is_file() and str(_pkg) not in sys.path:
        sys.path.insert(0, str(_pkg))
