#!/usr/bin/env python3
"""Each package builds alone: ``colcon build --packages-up-to <pkg>`` in an empty build and
install base, then every module of the package imports from that install only.

    python3 tools/check_isolated_builds.py                  # every package (make check-builds)
    python3 tools/check_isolated_builds.py vla_data vla_sim # some

A package that imports one it does not declare builds fine but fails the import here, because
--packages-up-to builds only what its package.xml names. Run inside the environment's set-up
(.venv exists); the workspace's own install/ is not on the path while checking.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / 'src'
IMPORT_ALL = (
    'import importlib, pkgutil, sys\n'
    'name = sys.argv[1]\n'
    'package = importlib.import_module(name)\n'
    'for m in pkgutil.walk_packages(package.__path__, name + "."):\n'
    '    importlib.import_module(m.name)\n'
)


def packages() -> dict[str, str]:
    """``{name: build_type}`` of every package under src/."""
    out = {}
    for xml in sorted(SRC.glob('*/package.xml')):
        root = ET.parse(xml).getroot()
        build_type = root.findtext('export/build_type') or 'ament_cmake'
        out[root.findtext('name') or xml.parent.name] = build_type
    return out


# A clean environment: a shell that had this workspace sourced would lend it its install.
CLEAN_ENV = {
    'HOME': os.environ.get('HOME', '/root'),
    'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'LANG': os.environ.get('LANG', 'C.UTF-8'),
}


def _in_env(command: str, install_base: str) -> list[str]:
    script = f'. {shlex.quote(str(ROOT / "tools" / "env.sh"))} && {command}'
    return ['bash', '-c', f'export VLA_INSTALL_BASE={shlex.quote(install_base)}; {script}']


def check(name: str, build_type: str) -> tuple[bool, float, str]:
    """``(ok, seconds, output of the failing step)`` for one package."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f'vla_alone_{name}_') as tmp:
        base = Path(tmp)
        build = (
            f'colcon --log-base {base / "log"} build --base-paths {shlex.quote(str(SRC))} '
            f'--packages-up-to {name} --build-base {base / "build"} '
            f'--install-base {base / "install"} --event-handlers console_cohesion- summary- '
            '--cmake-args -DBUILD_TESTING=OFF'
        )
        steps = [_in_env(build, 'none')]
        if build_type == 'ament_python':
            code = shlex.quote(IMPORT_ALL)
            steps.append(_in_env(f'python -c {code} {name}', str(base / 'install')))
        # Commands a package installs into <prefix>/bin are on PATH once the install is sourced.
        for command in sorted((SRC / name / 'bin').glob('*')):
            installed = base / 'install' / name / 'bin' / command.name
            check_path = (
                f'test "$(command -v {command.name})" = {installed} && {command.name} --help'
            )

            steps.append(_in_env(check_path, str(base / 'install')))
        for step in steps:
            result = subprocess.run(step, cwd=base, env=CLEAN_ENV, capture_output=True, text=True)
            if result.returncode != 0:
                return False, time.monotonic() - started, result.stdout + result.stderr
    return True, time.monotonic() - started, ''


def main(argv: list[str] | None = None) -> int:
    known = packages()
    p = argparse.ArgumentParser(description=(__doc__ or '').splitlines()[0])
    p.add_argument('packages', nargs='*', help=f'default: all of {sorted(known)}')
    args = p.parse_args(argv)
    unknown = sorted(set(args.packages) - set(known))
    if unknown:
        print(f'error: no package {unknown} under src/', file=sys.stderr)
        return 2
    failed = []
    total = time.monotonic()
    for name in args.packages or sorted(known):
        ok, seconds, output = check(name, known[name])
        print(f'{name:<18} {"ok" if ok else "FAILED"}  {seconds:5.1f} s', flush=True)
        if not ok:
            failed.append(name)
            print(output[-4000:])
    print(f'isolated builds: {len(failed)} failed, {time.monotonic() - total:.0f} s in all')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
