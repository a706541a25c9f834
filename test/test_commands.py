"""One command for the offline tools: `vla` on PATH once the environment is entered; executables
named after their modules; renamed ones still run, with a deprecation line, for one release."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
import subprocess

from console_scripts import SRC, console_scripts
import pytest

from vla_cli.main import COMMANDS

ROOT = SRC.parent
INSTALL = ROOT / 'install'
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / 'setup.py').is_file())
# A shell that has only entered the environment (no variables inherited from this one).
CLEAN_ENV = {'HOME': os.environ.get('HOME', '/root'), 'PATH': '/usr/local/bin:/usr/bin:/bin'}


def _in_environment(command: str) -> subprocess.CompletedProcess[str]:
    script = f'. {ROOT / "tools" / "env.sh"} && {command}'
    return subprocess.run(
        ['bash', '-c', script], env=CLEAN_ENV, capture_output=True, text=True, timeout=120
    )


def test_vla_is_on_path_once_the_environment_is_entered() -> None:
    found = _in_environment('command -v vla && vla --help')
    assert found.returncode == 0, found.stderr
    path, *help_lines = found.stdout.splitlines()
    assert path == str(INSTALL / 'vla_cli' / 'bin' / 'vla')  # colcon puts <prefix>/bin on PATH
    for name in COMMANDS:
        assert any(line.split()[:1] == [name] for line in help_lines), name


@pytest.mark.parametrize('package', PACKAGES)
def test_executables_are_installed_and_named_after_their_modules(package: str) -> None:
    for name, target in console_scripts(package).items():
        module, _, function = target.partition(':')
        assert (INSTALL / package / 'lib' / package / name).is_file(), f'ros2 run {package} {name}'
        assert callable(getattr(importlib.import_module(module), function)), target
        if module != f'{package}.renamed_commands' and (package, name) != ('vla_cli', 'vla'):
            assert name == module.rsplit('.', 1)[-1], f'{name} runs {module}'


def test_a_renamed_executable_prints_one_deprecation_line_and_runs(tmp_path: Path) -> None:
    old = INSTALL / 'vla_teleop' / 'lib' / 'vla_teleop' / 'recover_episodes'
    ran = _in_environment(f'{old} {tmp_path}')
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.splitlines() == [
        'recover_episodes is deprecated and will be removed in the next release; use `vla recover`'
    ]
    assert ran.stdout.strip() == f'{tmp_path}: nothing to recover'
