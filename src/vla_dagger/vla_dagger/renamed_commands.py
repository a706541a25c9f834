"""Executables renamed in 0.2 (the offline tools became `vla <command>`), kept under their old
names for one release: each prints a deprecation line, then runs its replacement."""

from vla_core.cli import renamed_command

dagger_sim = renamed_command('dagger_sim', 'vla dagger', 'vla_dagger.dagger_sim:main')
