"""Executables renamed in 0.2 (the offline tools became `vla <command>`), kept under their old
names for one release: each prints a deprecation line, then runs its replacement."""

from vla_core.cli import renamed_command

vla_run = renamed_command('vla_run', 'vla run', 'vla_ros_common.runner:main')
