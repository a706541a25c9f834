"""Executables renamed in 0.2 (the offline tools became `vla <command>`), kept under their old
names for one release: each prints a deprecation line, then runs its replacement."""

from vla_core.cli import renamed_command

evaluate_policy = renamed_command('evaluate_policy', 'vla eval', 'vla_sim.evaluation.policy:main')
evaluate_expert = renamed_command(
    'evaluate_expert', 'vla eval-expert', 'vla_sim.evaluation.expert:main'
)
