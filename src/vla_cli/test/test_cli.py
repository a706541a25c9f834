"""`vla <command>`: one line per command in the help, arguments passed on, bad input refused."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

from vla_cli.main import COMMANDS, main
from vla_core.cli import load_entry_point, renamed_command


def test_help_lists_every_command_on_one_line(capsys) -> None:
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        (line,) = [x for x in out.splitlines() if x.split()[:1] == [name]]
        assert line.strip() == f'{name:<16}{command.summary}'.strip()
    assert {'demos', 'dataset', 'train', 'export', 'engine', 'eval', 'dagger', 'run'} <= set(
        COMMANDS
    )


def test_help_imports_no_command_module() -> None:
    """`vla --help` is instant: torch, MuJoCo and rclpy load with the command that needs them."""
    code = (
        'import sys; from vla_cli.main import main; main(["--help"]); '
        'print(sorted(m for m in ("torch", "mujoco", "rclpy", "vla_sim") if m in sys.modules))'
    )
    src = Path(__file__).resolve().parents[2]
    env = {**os.environ, 'PYTHONPATH': f'{src / "vla_cli"}{os.pathsep}{src / "vla_core"}'}
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == '[]'


def test_arguments_reach_the_commands_main(tmp_path, capsys) -> None:
    assert main(['recover', str(tmp_path)]) == 0
    assert f'{tmp_path}: nothing to recover' in capsys.readouterr().out
    assert main(['recover', str(tmp_path / 'absent')]) == 2
    assert 'vla recover: ' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(['dataset', '--help'])
    assert exit_.value.code == 0 and 'usage: vla dataset' in capsys.readouterr().out


def test_a_missing_or_unknown_command_is_refused(capsys) -> None:
    assert main([]) == 2
    assert 'usage: vla <command>' in capsys.readouterr().err
    assert main(['trian']) == 2
    assert capsys.readouterr().err.strip() == "vla: no command 'trian'; `vla --help` lists them"


def test_a_renamed_command_warns_once_and_runs_its_replacement(tmp_path, monkeypatch, capsys):
    alias = renamed_command('recover_episodes', 'vla recover', 'vla_data.recover:main')
    monkeypatch.setattr(sys, 'argv', ['recover_episodes', str(tmp_path)])
    assert alias() == 0
    captured = capsys.readouterr()
    assert captured.err == (
        'recover_episodes is deprecated and will be removed in the next release; '
        'use `vla recover`\n'
    )
    assert 'nothing to recover' in captured.out
    assert load_entry_point('vla_data.recover:main') is load_entry_point(COMMANDS['recover'].target)
