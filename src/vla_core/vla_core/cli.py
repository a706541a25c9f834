"""Command-line plumbing shared by the ``vla`` command and the executables it replaced."""

from __future__ import annotations

from collections.abc import Callable, Sequence
import importlib
import sys

__all__ = ['load_entry_point', 'renamed_command']

Main = Callable[[Sequence[str] | None], int | None]


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
