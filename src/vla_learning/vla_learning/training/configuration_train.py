"""Experiment configuration: policy, data, optimizer, loop. Loaded from YAML by the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_core.config import Config, ConfigError, config_from_dict, param
from vla_learning.data.recorded import RecordedConfig
from vla_learning.data.synthetic import SyntheticConfig
from vla_learning.policies.configuration_policy import PolicyConfig

__all__ = ['DataConfig', 'ExperimentConfig', 'OptimConfig', 'TrainConfig', 'load_experiment']


@dataclass(frozen=True, kw_only=True)
class DataConfig(Config):
    source: str = param(
        'synthetic', description='dataset source', choices=('synthetic', 'recorded')
    )
    synthetic: SyntheticConfig = param(
        default_factory=SyntheticConfig, description='synthetic task (source=synthetic)'
    )
    recorded: RecordedConfig = param(
        default_factory=RecordedConfig, description='recorded demonstrations (source=recorded)'
    )
    record_observations: int = param(
        32,
        description='validation observations saved for export parity/calibration',
        range=(0, 4096),
    )


@dataclass(frozen=True, kw_only=True)
class OptimConfig(Config):
    lr: float = param(3e-4, description='peak learning rate (AdamW)', range=(0.0, 1.0))
    weight_decay: float = param(1e-4, description='AdamW weight decay', range=(0.0, 1.0))
    warmup_steps: int = param(50, description='linear warm-up steps', range=(0, 1_000_000))
    min_lr_ratio: float = param(0.1, description='cosine floor / peak', range=(0.0, 1.0))
    grad_clip: float = param(1.0, description='max grad norm (0: off)', range=(0.0, 1e6))
    ema_decay: float = param(
        0.0, description='exponential moving average of the weights per step (0: off); '
        'validation, checkpoints and exports use the average', range=(0.0, 0.99999),
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Config):
    steps: int = param(600, description='optimizer steps', range=(1, 100_000_000))
    batch_size: int = param(32, description='per-process batch size', range=(1, 65536))
    eval_every: int = param(50, description='validate every N steps', range=(1, 100_000_000))
    eval_batches: int = param(4, description='validation batches (fixed subset)', range=(1, 10_000))
    checkpoint_every: int = param(200, description='checkpoint every N steps', range=(1, 10**9))
    log_every: int = param(10, description='progress-bar update every N steps', range=(1, 10**9))
    seed: int = param(0, description='seed of init, sampling and noise', range=(0, 2**31 - 1))
    device: str = param('auto', description='cpu, cuda or auto', choices=('auto', 'cpu', 'cuda'))
    num_threads: int = param(2, description='torch CPU threads (0: default)', range=(0, 256))
    output_dir: str = param('runs/default', description='checkpoints, plots, logs')
    progress: bool = param(True, description='show tqdm progress bars')
    cache_vision_features: bool = param(
        True, description='with a fully frozen backbone, run it once per image and cache'
    )


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig(Config):
    policy: PolicyConfig = param(default_factory=PolicyConfig, description='the policy')
    data: DataConfig = param(default_factory=DataConfig, description='the data')
    optim: OptimConfig = param(default_factory=OptimConfig, description='the optimizer')
    train: TrainConfig = param(default_factory=TrainConfig, description='the loop')

    def validate(self) -> None:
        if self.train.eval_batches < 1:
            raise ConfigError('train.eval_batches', 'must be >= 1')


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read a YAML experiment, apply dotted ``overrides`` (``{'train.steps': 10}``), validate."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split('.')
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config_from_dict(ExperimentConfig, data)
