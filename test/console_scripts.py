"""The console scripts each package's setup.py declares (parsed: running setup.py builds)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / 'src'


def console_scripts(package: str) -> dict[str, str]:
    """``{executable: 'module:function'}`` of ``src/<package>/setup.py``."""
    tree = ast.parse((SRC / package / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    entries = ast.literal_eval(value)
                    return dict(
                        (name.strip(), target.strip())
                        for name, target in (e.split('=') for e in entries)
                    )
    return {}
