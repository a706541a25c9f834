"""Every import declared in its package.xml, with rosdep keys from the list kept in the repository
(tools/check_package_deps.py, also run by `make lint`)."""

from __future__ import annotations

from pathlib import Path
import sys

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
import check_package_deps as deps

XML = """<?xml version="1.0"?>
<package format="3">
  <name>{name}</name>
  <version>0.1.0</version>
  <description>test</description>
  <maintainer email="a@b.c">a</maintainer>
  <license>Apache-2.0</license>
{deps}
  <export><build_type>ament_python</build_type></export>
</package>
"""


def _package(src: Path, name: str, depends: str, code: str, test_code: str = '') -> None:
    root = src / name
    (root / name).mkdir(parents=True)
    (root / 'test').mkdir()
    (root / 'package.xml').write_text(XML.format(name=name, deps=depends))
    (root / name / 'core.py').write_text(code)
    (root / 'test' / 'helper_module.py').write_text('')
    (root / 'test' / 'test_core.py').write_text(test_code)


def test_the_tree_declares_every_import() -> None:
    assert deps.check() == []


def test_an_undeclared_import_fails(tmp_path: Path) -> None:
    _package(
        tmp_path, 'pkg_a',
        '  <exec_depend>python3-numpy</exec_depend>\n  <test_depend>python3-pytest</test_depend>',
        'import os\nimport numpy\n\ndef f():\n    import yaml  # lazily, still a dependency\n',
        'import pytest\nimport helper_module\nfrom pkg_a import core\nimport rclpy\n',
    )  # fmt: skip
    problems = deps.check(tmp_path)
    assert len(problems) == 2, problems
    assert 'pkg_a/pkg_a/core.py:5: imports yaml' in problems[0]
    assert '<exec_depend>python3-yaml</exec_depend>' in problems[0]
    assert 'test_core.py:4: imports rclpy' in problems[1]
    assert '<test_depend>rclpy</test_depend>' in problems[1]


def test_a_test_dependency_does_not_serve_the_package_code(tmp_path: Path) -> None:
    _package(tmp_path, 'pkg_b', '  <test_depend>python3-torch</test_depend>', 'import torch\n',
             'import torch\n')  # fmt: skip
    (problem,) = deps.check(tmp_path)
    assert 'pkg_b/pkg_b/core.py:1: imports torch' in problem


@pytest.mark.parametrize(
    ('depend', 'code', 'message'),
    [
        ('python3-numpy-pip', 'import numpy\n', 'rosdep key python3-numpy-pip is neither'),
        ('python3-numpy', 'import left_pad\n', 'imports left_pad, which has no rosdep key'),
    ],
)
def test_a_key_outside_the_list_fails(tmp_path: Path, depend: str, code: str, message) -> None:
    _package(tmp_path, 'pkg_c', f'  <exec_depend>{depend}</exec_depend>', code)
    assert any(message in p for p in deps.check(tmp_path))
