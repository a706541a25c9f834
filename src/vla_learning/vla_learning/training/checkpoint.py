"""Checkpoints: plain tensors and primitives only, so they load with ``weights_only=True``.

Format (a dict, ``torch.save``d atomically)::

    format:        'vla_learning.checkpoint/1'
    policy_config: flat dotted dict of PolicyConfig (rebuilds the model)
    model:         state_dict, including the normalizer's stats buffers (the weights' moving
                   average when training with optim.ema_decay)
    live_model:    with optim.ema_decay only: the optimizer's own weights, which resume continues
    ema_updates:   with optim.ema_decay only: steps averaged so far
    step:          optimizer steps done
    optimizer:     AdamW state_dict (absent in exported weights-only files)
    rng:           {'torch': ByteTensor, 'generator': ByteTensor[, 'cuda': ByteTensor]}
    history:       {'step': [...], 'train_loss': [...], 'val_step': [...], 'val_loss': [...], ...}
    experiment:    flat dotted dict of the ExperimentConfig that trained it
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vla_core.cli import InputError
from vla_core.config import config_from_flat, config_to_flat
from vla_learning.policies.base import Policy
from vla_learning.policies.configuration_policy import PolicyConfig

__all__ = ['CHECKPOINT_FORMAT', 'load_checkpoint', 'load_policy', 'save_checkpoint']

CHECKPOINT_FORMAT = 'vla_learning.checkpoint/1'


def save_checkpoint(path: str | Path, policy: Policy, step: int, **extra: Any) -> Path:
    """Write ``policy`` (config + weights + stats) and ``extra`` entries atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        'format': CHECKPOINT_FORMAT,
        'policy_config': _plain(config_to_flat(policy.config)),
        'model': {k: v.detach().cpu() for k, v in policy.state_dict().items()},
        'step': int(step),
    }
    payload.update(extra)
    tmp = path.with_suffix(path.suffix + '.tmp')
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """Load with ``weights_only=True``: no arbitrary pickle, so untrusted files cannot run code.

    A file that is not a readable checkpoint (truncated, another format, a pickle that would run
    code) raises InputError naming it; a missing one FileNotFoundError."""
    try:
        data = torch.load(Path(path), map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as err:  # torch reports corruption as RuntimeError, UnpicklingError, ...
        raise InputError(
            f'{path}: not a readable checkpoint ({type(err).__name__}: {err})'
        ) from err
    if not isinstance(data, dict) or data.get('format') != CHECKPOINT_FORMAT:
        raise InputError(f'{path}: not a {CHECKPOINT_FORMAT} checkpoint')
    return data


# The auxiliary scene-state head on the trunk (training only, never exported), replaced by
# scene.localizer: checkpoints that carry its setting and weights still load, without them.
_RETIRED_CONFIG = ('env_state_loss_weight',)
_RETIRED_WEIGHTS = ('env_state_head.',)


def policy_config_of(checkpoint: dict[str, Any]) -> PolicyConfig:
    flat = {k: v for k, v in checkpoint['policy_config'].items() if k not in _RETIRED_CONFIG}
    return config_from_flat(PolicyConfig, flat)


def load_policy(
    path: str | Path, map_location: str | torch.device = 'cpu', pretrained_backbone: bool = False
) -> Policy:
    """Rebuild the policy of a checkpoint, weights and normalization stats included, in eval mode.

    The backbone's ImageNet weights are not re-read (``pretrained_backbone=False``): the
    checkpoint's state_dict already holds the backbone's (possibly fine-tuned) weights.
    """
    from vla_learning.policies.factory import make_policy

    ckpt = load_checkpoint(path, map_location)
    config = policy_config_of(ckpt)
    if not pretrained_backbone and config.vision.pretrained:
        config = config.replace(vision=config.vision.replace(pretrained=False))
    policy = make_policy(config)
    state = {k: v for k, v in ckpt['model'].items() if not k.startswith(_RETIRED_WEIGHTS)}
    policy.load_state_dict(state)
    return policy.to(map_location).eval()


def _plain(flat: dict[str, Any]) -> dict[str, Any]:
    # Tuples would survive weights_only too; lists keep the file readable from any tool.
    return {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()}
