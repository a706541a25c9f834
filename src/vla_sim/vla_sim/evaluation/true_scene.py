"""Perfect perception, an evaluation-only diagnostic: the sim's true scene state in place of the
policy's own estimate. Is perception or control short?

A policy with a scene localizer (``policy.scene``) estimates the instructed block's and the
target's xy from a camera and feeds that to its trunk. Here, for each inference, the localizer is
replaced by one that returns the sim's true values (``TabletopTask.scene_state``). Only the
checkpoint can be run this way (the torch backend): an exported graph has no such input, and no
deployment interface carries privileged state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from vla_core.chunk import ActionChunk
from vla_policy.backends.base import BackendError, Observation

__all__ = ['TrueSceneBackend', 'known_scene']


class _KnownScene(nn.Module):
    """A localizer that is always right: ``(B, 4)`` from the given scene state."""

    def __init__(self, xy: torch.Tensor) -> None:
        super().__init__()
        self.xy = xy

    def forward(self, image: torch.Tensor, lang_n: torch.Tensor) -> torch.Tensor:
        del lang_n
        return self.xy.expand(image.shape[0], -1)


@contextmanager
def known_scene(policy: Any, scene_state: np.ndarray) -> Iterator[None]:
    """Within, ``policy``'s scene localizer returns ``scene_state`` ``(4,)`` [m] (object xy, goal
    xy) for every row; its own localizer is back afterwards."""
    estimator = getattr(policy, 'localizer', None)
    if estimator is None:
        raise BackendError('true scene state: this policy has no scene localizer (policy.scene)')
    device = next(policy.parameters()).device
    xy = torch.as_tensor(np.asarray(scene_state, np.float32).reshape(1, -1), device=device)
    policy.localizer = _KnownScene(xy)
    try:
        yield
    finally:
        policy.localizer = estimator


class TrueSceneBackend:
    """A loaded torch backend whose policy sees the current episode's true scene state.

    What :func:`vla_sim.evaluation.policy.run_episodes` needs: ``spec``, ``infer`` and
    ``reset_episode(task, seed)`` (which hands over the task whose ``scene_state()`` is read at
    every inference)."""

    scene_state_source = 'true (sim)'

    def __init__(self, backend: Any) -> None:
        policy = getattr(backend, 'policy', None)
        if policy is None:
            raise BackendError(
                f'{backend.name} backend: the true scene state needs the torch backend '
                '(a checkpoint): an exported graph has no such input'
            )
        if getattr(policy, 'localizer', None) is None:
            raise BackendError('true scene state: this policy has no scene localizer')
        self.backend = backend
        self._task: Any = None

    @property
    def spec(self) -> Any:
        return self.backend.spec

    def reset_episode(self, task: Any, seed: int) -> None:
        self._task = task
        inner = getattr(self.backend, 'reset_episode', None)
        if inner is not None:
            inner(task, seed)

    def infer(self, obs: Observation) -> ActionChunk:
        if self._task is None:
            raise BackendError('true scene state: reset_episode(task, seed) first')
        with known_scene(self.backend.policy, self._task.scene_state()):
            return self.backend.infer(obs)
