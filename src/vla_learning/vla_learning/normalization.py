"""Normalization statistics that live in the model's state_dict, so they travel with the weights.

The stats are persistent buffers: a checkpoint carries them, and the ONNX export bakes them into
the graph, so the deployed model takes raw joint values and returns raw joint targets.
With ``delta`` actions the targets are taken relative to the current joint state before
normalizing, and the state is added back after: that too is inside the graph.

Instruction embeddings are centred on the training instructions' mean and scaled by their RMS
spread. Sentence embeddings of "push the red block ..." and "push the green block ..." differ in a
small part of their length; uncentred, a policy trained on them ignored the instruction entirely
(shuffling instructions on held-out data left its error unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

__all__ = ['NormStats', 'Normalizer']

_MIN_STD = 1e-4  # a joint that never moves must not blow up the normalized values
_MIN_LANG_SPREAD = 1e-2  # one instruction only: centre it, do not amplify nothing
_NAMES = ('state_mean', 'state_std', 'action_mean', 'action_std', 'lang_mean', 'lang_std')


@dataclass(frozen=True)
class NormStats:
    """Per-dimension mean and std of the state ``(S,)`` and of the action targets ``(A,)``."""

    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray
    lang_mean: np.ndarray | None = None  # (L,) mean instruction embedding; None: identity
    lang_std: np.ndarray | None = None  # (1,) RMS spread of the embeddings around it

    @classmethod
    def from_data(
        cls,
        state: np.ndarray,
        actions: np.ndarray,
        delta: bool = False,
        lang_table: np.ndarray | None = None,
    ) -> NormStats:
        """Stats of ``state (N, S)``, ``actions (N, H, A)`` (of ``actions - state`` when
        ``delta``) and the distinct instruction embeddings ``lang_table (K, L)``."""
        if delta:
            actions = actions - state[:, None, :]
        flat_actions = actions.reshape(-1, actions.shape[-1])
        lang_mean = lang_std = None
        if lang_table is not None:
            lang_mean = lang_table.mean(0).astype(np.float32)
            spread = np.sqrt(((lang_table - lang_mean) ** 2).sum(-1).mean())
            lang_std = np.array([max(float(spread), _MIN_LANG_SPREAD)], np.float32)
        return cls(
            state_mean=state.mean(0).astype(np.float32),
            state_std=state.std(0).astype(np.float32),
            action_mean=flat_actions.mean(0).astype(np.float32),
            action_std=flat_actions.std(0).astype(np.float32),
            lang_mean=lang_mean,
            lang_std=lang_std,
        )

    @classmethod
    def identity(cls, state_dim: int, action_dim: int) -> NormStats:
        return cls(
            state_mean=np.zeros(state_dim, np.float32),
            state_std=np.ones(state_dim, np.float32),
            action_mean=np.zeros(action_dim, np.float32),
            action_std=np.ones(action_dim, np.float32),
        )


class Normalizer(nn.Module):
    """Holds the stats as persistent buffers; maps raw <-> normalized state and actions."""

    state_mean: torch.Tensor
    state_std: torch.Tensor
    action_mean: torch.Tensor
    action_std: torch.Tensor

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        stats: NormStats | None = None,
        delta: bool = False,
        lang_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.delta = delta
        stats = stats or NormStats.identity(state_dim, action_dim)
        if stats.lang_mean is None:
            stats = replace(
                stats,
                lang_mean=np.zeros(lang_dim or 0, np.float32),
                lang_std=np.ones(1, np.float32),
            )
        for name in _NAMES:
            self.register_buffer(name, torch.zeros(0), persistent=True)
        self.set_stats(stats)
        if self.state_mean.shape != (state_dim,) or self.action_mean.shape != (action_dim,):
            raise ValueError(
                f'stats shapes {tuple(self.state_mean.shape)}/{tuple(self.action_mean.shape)} '
                f'do not match state_dim={state_dim}, action_dim={action_dim}'
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Checkpoints from before instruction normalization load with it as the identity.
        for name in ('lang_mean', 'lang_std'):
            state_dict.setdefault(prefix + name, getattr(self, name))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_stats(self, stats: NormStats) -> None:
        for name in _NAMES:
            value = torch.as_tensor(np.asarray(getattr(stats, name)), dtype=torch.float32)
            if name.endswith('std'):
                value = value.clamp_min(_MIN_STD)
            setattr(self, name, value.clone())

    def stats(self) -> NormStats:
        return NormStats(**{k: getattr(self, k).detach().cpu().numpy().copy() for k in _NAMES})

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` raw -> normalized."""
        return (state - self.state_mean) / self.state_std

    def normalize_lang(self, lang_emb: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` instruction embeddings -> centred on the training instructions, scaled."""
        if self.lang_mean.numel() == 0:
            return lang_emb
        return (lang_emb - self.lang_mean) / self.lang_std

    def normalize_actions(self, actions: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``(B, H, A)`` raw targets, raw ``state (B, S)`` -> normalized."""
        if self.delta:
            actions = actions - state[:, None, :]
        return (actions - self.action_mean) / self.action_std

    def unnormalize_actions(self, actions: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``(B, H, A)`` normalized, raw ``state (B, S)`` -> raw targets."""
        raw = actions * self.action_std + self.action_mean
        return raw + state[:, None, :] if self.delta else raw
