"""The shared command-line error handling: user errors are one line and exit code 2."""

from __future__ import annotations

import pytest

from vla_core.cli import InputError, cli_main
from vla_core.config import ConfigError


def _tool(error: BaseException | None):
    seen: list[list[str]] = []

    @cli_main('tool')
    def main(argv):
        seen.append(list(argv))
        if error is not None:
            raise error
        return 0

    return main, seen


@pytest.mark.parametrize(
    ('error', 'line'),
    [
        (FileNotFoundError(2, 'No such file or directory', 'runs/x/last.pt'),
         'tool: error: runs/x/last.pt: No such file or directory'),
        (InputError('runs/x/last.pt: not a checkpoint\n(truncated)'),
         'tool: error: runs/x/last.pt: not a checkpoint (truncated)'),
        (ConfigError('train.stepz', 'unknown parameter'),
         "tool: error: parameter 'train.stepz': unknown parameter"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line_and_exit_code_2(capsys, error, line):
    main, seen = _tool(error)
    assert main(['--out', 'x']) == 2
    assert capsys.readouterr().err == line + '\n'
    assert seen == [['--out', 'x']]


def test_debug_shows_the_traceback_and_bugs_keep_theirs():
    main, seen = _tool(InputError('bad'))
    with pytest.raises(InputError):
        main(['--debug', 'a'])
    assert seen == [['a']]  # --debug is not the tool's argument
    main, _ = _tool(KeyError('a bug'))
    with pytest.raises(KeyError):
        main([])
    assert _tool(None)[0]([]) == 0
