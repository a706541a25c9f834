"""Command-line plumbing shared by every tool of the suite: how a tool fails on a user's mistake
(one line, exit code 2), and the executables the ``vla`` command replaced.

    @cli_main('vla export')
    def main(argv: list[str] | None = None) -> int:
        args = build_parser().parse_args(argv)
        ...

A user error (:data:`USER_ERRORS`: a file that is missing, unreadable or not what it should be,
an invalid configuration value) prints ``vla export: error: <file or parameter>: <problem>`` on
stderr and returns 2, like argparse's own usage errors; ``--debug`` anywhere on the command line
shows the traceback instead. Anything else is a bug and keeps its traceback. Library code says
that an input is wrong by raising :class:`InputError` (or ConfigError, OSError) with a message
that names the input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import functools
import importlib
import sys
from typing import Protocol

from vla_core.config import ConfigError

__all__ = [
    'USER_ERRORS', 'InputError', 'cli_main', 'describe_error', 'load_entry_point',
    'renamed_command',
]  # fmt: skip

Main = Callable[[Sequence[str] | None], int | None]


class MainFn(Protocol):
    """A tool's ``main(argv=None) -> exit code``."""

    def __call__(self, argv: Sequence[str] | None = None) -> int: ...


def load_entry_point(target: str) -> Main:
    """``'package.module:function'`` -> that function, its module imported only now (a command's
    heavy imports are paid by that command alone)."""
    module, _, name = target.partition(':')
    return getattr(importlib.import_module(module), name)


def renamed_command(old: str, new: str, target: str) -> Callable[[], int]:
    """A console-script entry for an executable renamed to ``new``: one deprecation line on
    stderr, then ``target`` runs with the same arguments. Kept for one release."""

    def main() -> int:
        print(
            f'{old} is deprecated and will be removed in the next release; use `{new}`',
            file=sys.stderr,
        )
        return int(load_entry_point(target)(sys.argv[1:]) or 0)

    main.__doc__ = f'``{old}``: the old name of ``{new}``.'
    return main


class InputError(ValueError):
    """An input the user gave is wrong (a corrupt checkpoint, a directory that is not an export);
    the message names it."""


# ConfigError: a configuration value or file entry; OSError: a missing or unreadable file.
USER_ERRORS: tuple[type[BaseException], ...] = (InputError, ConfigError, OSError)


def describe_error(err: BaseException) -> str:
    """One line saying what is wrong, naming the file where the error knows it."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f'{err.filename}: {err.strerror}'
    else:
        text = str(err) or type(err).__name__
    return ' '.join(text.split())


def cli_main(prog: str) -> Callable[[MainFn], MainFn]:
    """Decorate a ``main(argv) -> exit code``: user errors become one line and exit code 2
    unless ``--debug`` is on the command line (it is taken out before ``main`` sees it)."""

    def decorate(main: MainFn) -> MainFn:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> int:
            args = list(sys.argv[1:] if argv is None else argv)
            debug = '--debug' in args
            args = [a for a in args if a != '--debug']
            try:
                return main(args)
            except USER_ERRORS as err:
                if debug:
                    raise
                print(f'{prog}: error: {describe_error(err)}', file=sys.stderr)
                return 2

        return run

    return decorate
