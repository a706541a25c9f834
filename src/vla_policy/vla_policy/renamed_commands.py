"""Executables renamed in 0.2 (the offline tools became `vla <command>`), kept under their old
names for one release: each prints a deprecation line, then runs its replacement."""

from vla_core.cli import renamed_command

vla_build_engine = renamed_command(
    'vla-build-engine', 'vla engine', 'vla_policy.backends.tensorrt_backend:main'
)
