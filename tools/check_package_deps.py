#!/usr/bin/env python3
"""Every import declared: each package.xml names what its package's Python code imports.

    python3 tools/check_package_deps.py          # one line per problem, exit status 1 if any

The package's own code needs ``<exec_depend>`` (or ``<depend>``); its tests may also use
``<test_depend>``. Our packages and ROS packages are declared by name, Python modules by their
rosdep key (tools/rosdep_keys.yaml). A key must be one rosdistro defines or one of ours
(tools/rosdep/vla.yaml), since rosdep cannot resolve keys offline here. The root conftest puts
every package on sys.path, so an undeclared import would pass every test; this check does not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
import sys
import xml.etree.ElementTree as ET

import yaml

ROOT = Path(__file__).resolve().parent.parent
KEYS_FILE = ROOT / 'tools' / 'rosdep_keys.yaml'
LOCAL_KEYS_FILE = ROOT / 'tools' / 'rosdep' / 'vla.yaml'
# Python files a package installs from outside its directory (vla_bringup installs launch/).
EXTRA_SOURCES = {'vla_bringup': ('launch',)}
RUNTIME_TAGS = ('depend', 'exec_depend')
TEST_TAGS = (*RUNTIME_TAGS, 'test_depend')


@dataclass(frozen=True)
class Keys:
    python: dict[str, str]  # import name -> rosdep key
    valid: frozenset[str]  # rosdep keys that resolve (rosdistro's and ours)
    ros_packages: frozenset[str]
    optional: frozenset[str]

    @classmethod
    def load(cls, keys_file: Path = KEYS_FILE, local_file: Path = LOCAL_KEYS_FILE) -> Keys:
        data = yaml.safe_load(keys_file.read_text())
        local = yaml.safe_load(local_file.read_text()) or {}
        return cls(
            python=dict(data['python']),
            valid=frozenset(data['rosdistro_keys']) | frozenset(local),
            ros_packages=frozenset(data['ros_packages']),
            optional=frozenset(data.get('optional') or {}),
        )


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def declared(package_xml: Path) -> dict[str, set[str]]:
    """``{tag: names}`` of a package.xml's dependency tags."""
    out: dict[str, set[str]] = {}
    for element in ET.parse(package_xml).getroot():
        if element.tag.endswith('depend') and element.text:
            out.setdefault(element.tag, set()).add(element.text.strip())
    return out


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, top-level module)`` of every absolute import in a file, lazy ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split('.')[0]


def sources(package_dir: Path) -> Iterator[tuple[Path, bool]]:
    """``(file, is_test)`` of every Python file of a package (setup.py is the build's)."""
    for path in sorted(package_dir.rglob('*.py')):
        if path.name != 'setup.py' and '__pycache__' not in path.parts:
            yield path, path.relative_to(package_dir).parts[0] == 'test'
    for folder in EXTRA_SOURCES.get(package_dir.name, ()):
        for path in sorted((ROOT / folder).rglob('*.py')):
            yield path, False


def check_package(package_dir: Path, keys: Keys, workspace: set[str]) -> list[str]:
    deps = declared(package_dir / 'package.xml')
    name = package_dir.name
    problems = []
    for tag_names in deps.values():
        for dep in sorted(tag_names):
            if dep.startswith('python3-') and dep not in keys.valid:
                problems.append(
                    f'{name}/package.xml: rosdep key {dep} is neither in rosdistro_keys of '
                    f'{_shown(KEYS_FILE)} nor defined in {_shown(LOCAL_KEYS_FILE)}'
                )
    stdlib = set(sys.stdlib_module_names)
    for path, is_test in sources(package_dir):
        local_modules = {p.stem for p in path.parent.glob('*.py')} if is_test else set()
        tags = TEST_TAGS if is_test else RUNTIME_TAGS
        allowed = set().union(*(deps.get(t, set()) for t in tags))
        shown = _shown(path)
        seen: set[str] = set()
        for line, module in imports(path):
            if module in stdlib or module == name or module in local_modules or module in seen:
                continue
            seen.add(module)
            if module in workspace or module in keys.ros_packages:
                key = module
            elif module in keys.python:
                key = keys.python[module]
            elif module in keys.optional:
                continue
            else:
                problems.append(
                    f'{shown}:{line}: imports {module}, which has no rosdep key in '
                    f'{_shown(KEYS_FILE)} (python:, ros_packages: or optional:)'
                )
                continue
            if key not in allowed:
                tag = 'test_depend' if is_test else 'exec_depend'
                problems.append(
                    f'{shown}:{line}: imports {module}, but {name}/package.xml lacks '
                    f'<{tag}>{key}</{tag}>'
                )
    return problems


def check(src: Path = ROOT / 'src', keys: Keys | None = None) -> list[str]:
    keys = keys or Keys.load()
    packages = sorted(p for p in src.iterdir() if (p / 'package.xml').is_file())
    workspace = {p.name for p in packages}
    return [problem for p in packages for problem in check_package(p, keys, workspace)]


def main() -> int:
    problems = check()
    for problem in problems:
        print(problem)
    if problems:
        print(f'package dependencies: {len(problems)} problem(s)', file=sys.stderr)
        return 1
    print('package dependencies: every import declared')
    return 0


if __name__ == '__main__':
    sys.exit(main())
