"""Where are the instructed object and the goal? A small convolutional localizer on one camera.

Measured on the sim tasks: the keypoint VLA locates the named block to about 1-2 cm on the 300
training layouts but only to 3-11 cm (median) on new ones: its trunk memorizes layouts. A policy
given the true positions instead succeeds in 50 of 60 episodes (``state_oracle``). This localizer
is built to generalize across layouts: two streams of convolutions at stride 2 (cells of about
1 cm on the table at 96 px), one for the named object and one for the goal, each end in a heatmap
whose spatial-softmax position a tiny map turns into table coordinates. Nothing in it can
memorize a layout. The instruction FiLM-modulates the object stream's last convolution, which is
how "red" comes to light up the red block.

A heatmap and its map to the table must find each other: until the heatmap leans to the object
the map has nothing to fit, and until the map is oriented the heatmap gets no direction. That
start took from 250 to over 2000 steps depending on the seed alone. So each stream trains a few
candidates side by side (more draws of that start, at the cost of a few 1x1 filters and tiny
maps) and uses the one with the least running error.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from vla_learning.policies.configuration_common import SceneConfig
from vla_learning.policies.layers import cell_centres

__all__ = ['SceneLocalizer']

# Scene-state layout the localizer predicts [m].
SCENE_NAMES = ('object_x', 'object_y', 'goal_x', 'goal_y')
SCENE_DIM = len(SCENE_NAMES)
# Typical spread of the positions [m]: brings the loss to about unit size.
SCALE_M = 0.1
# Weight of each training batch in a candidate's running error.
ERROR_SMOOTHING = 0.02


class SceneLocalizer(nn.Module):
    """``image (B, 3, H, W)`` in [0, 1], ``lang (B, L)`` normalized -> scene state ``(B, 4)``."""

    candidate_error: torch.Tensor

    def __init__(self, config: SceneConfig, image_size: int, lang_dim: int) -> None:
        super().__init__()
        d, k = 128, config.candidates
        self.lang = nn.Sequential(
            nn.LayerNorm(lang_dim), nn.Linear(lang_dim, d), nn.GELU(), nn.Linear(d, d)
        )
        # One stream each: sharing the convolutions, whichever of the two was found first held
        # the features and the other stalled for a thousand steps. The goal stream sees no
        # instruction (here there is one goal; instruction-modulated features slowed finding it).
        self.object = _PointStream(config.width, image_size, k, condition_dim=d)
        self.goal = _PointStream(config.width, image_size, k)
        # Running squared error of each candidate (object row, goal row): the least is used.
        self.register_buffer('candidate_error', torch.zeros(2, k))

    def candidates(self, image: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        """Every candidate's estimate ``(B, 2, K, 2)``: (object, goal) x candidate x (x, y)."""
        h = (image - 0.5) / 0.25
        return torch.stack([self.object(h, self.lang(lang)), self.goal(h)], 1)

    def forward(self, image: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        return self._select(self.candidates(image, lang))

    def _select(self, points: torch.Tensor) -> torch.Tensor:
        best = self.candidate_error.argmin(-1)  # (2,)
        streams = torch.arange(2, device=points.device)
        return points[:, streams, best].flatten(1)

    def loss(
        self, image: torch.Tensor, lang: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean squared error [``SCALE_M`` units] of every candidate against ``target (B, 4)``
        [m], rows with NaN skipped, and the prediction ``(B, 4)``. In training mode it also
        updates the running error that picks each stream's candidate."""
        points = self.candidates(image, lang)
        pred = self._select(points)
        known = torch.isfinite(target).all(-1)
        if not bool(known.any()):
            return 0.0 * points.sum(), pred  # keeps every parameter in the graph (DDP)
        error = ((points[known] - target[known].view(-1, 2, 1, 2)) / SCALE_M).pow(2)
        per_candidate = error.mean((0, 3))  # (2, K)
        if self.training:
            with torch.no_grad():
                self.candidate_error.lerp_(per_candidate.detach(), ERROR_SMOOTHING)
        return per_candidate.mean(), pred


class _PointStream(nn.Module):
    """Convolutions -> ``k`` spatial-softmax heatmaps -> each one's expected image position
    (sub-cell precise) -> a table position per candidate ``(B, k, 2)``. With a condition,
    FiLM on the last convolution lets it choose what lights up (the instruction naming a
    colour)."""

    grid: torch.Tensor

    def __init__(self, width: int, image_size: int, k: int, condition_dim: int = 0) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv2d(3, width, 5, stride=2, padding=2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.Conv2d(width, 2 * width, 3, padding=1),
        ])  # fmt: skip
        self.film: nn.Linear | None = None
        if condition_dim:
            self.film = nn.Linear(condition_dim, 2 * 2 * width)
            # Near-zero: training starts unconditioned (exactly zero would leave the condition's
            # MLP without gradient at the first step).
            nn.init.normal_(self.film.weight, std=1e-3)
            nn.init.zeros_(self.film.bias)
        self.heatmaps = nn.Conv2d(2 * width, k, 1)
        side = -(-image_size // 2)  # the stride-2 convolution's output side
        self.register_buffer('grid', cell_centres(side), persistent=False)
        # Image position -> table position; the camera is fixed, so each is one smooth map.
        self.point_maps = nn.ModuleList(
            nn.Sequential(
                nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 2)
            )
            for _ in range(k)
        )

    def forward(self, h: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        *early, last = self.convs
        for conv in early:
            h = F.gelu(conv(h))
        h = last(h)
        if self.film is not None:
            assert condition is not None, 'a conditioned stream needs its condition'
            gain, bias = self.film(condition)[..., None, None].chunk(2, dim=1)
            h = h * (1.0 + gain) + bias
        attn = self.heatmaps(F.gelu(h)).flatten(2).softmax(-1)  # (B, k, h * w)
        uv = attn @ self.grid  # (B, k, 2)
        return torch.stack([m(uv[:, i]) for i, m in enumerate(self.point_maps)], 1)
