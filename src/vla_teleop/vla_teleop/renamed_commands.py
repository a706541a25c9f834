"""Executables renamed in 0.2 (the offline tools became `vla <command>`), kept under their old
names for one release: each prints a deprecation line, then runs its replacement."""

from vla_core.cli import renamed_command

recorder = renamed_command(
    'recorder', 'ros2 run vla_teleop recorder_node', 'vla_teleop.recorder_node:main'
)
recover_episodes = renamed_command('recover_episodes', 'vla recover', 'vla_data.recover:main')
build_dataset = renamed_command('build_dataset', 'vla dataset', 'vla_data.dataset.build:main')
