"""Executables renamed in 0.2 (the offline tools became `vla <command>`), kept under their old
names for one release: each prints a deprecation line, then runs its replacement."""

from vla_core.cli import renamed_command

vla_train = renamed_command('vla-train', 'vla train', 'vla_learning.train:main')
vla_export = renamed_command('vla-export', 'vla export', 'vla_learning.export.__main__:main')
vla_benchmark = renamed_command('vla-benchmark', 'vla benchmark', 'vla_learning.benchmark:main')
train_residual = renamed_command(
    'train_residual', 'vla train-residual', 'vla_learning.train_residual:main'
)
