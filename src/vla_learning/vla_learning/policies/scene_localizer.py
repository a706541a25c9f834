"""Where are the instructed object and the goal? A small convolutional localizer on one camera.

Measured on the sim tasks: the keypoint VLA locates the named block to about 1 cm on the 300
training layouts but only to 3.5-11 cm (median) on new ones: its trunk memorizes layouts. A
policy given the true positions instead succeeds in 50 of 60 episodes (``state_oracle``). This
localizer is built to generalize across layouts: convolutions at stride 2 (cells of about 1 cm on
the table at 96 px) end in heatmaps whose spatial-softmax position (sub-cell precise) a tiny
per-point map turns into table coordinates. Nothing in it can memorize a layout.

``num_slots`` heatmaps are candidate objects (one per block colour, learned), one more is the
goal; the instruction picks a slot. Training uses a mixture loss (each slot's error weighted by
how strongly the instruction picks it) so that slots specialize instead of averaging.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from vla_learning.policies.configuration_common import SceneConfig

__all__ = ['SceneLocalizer']

# Scene-state layout the localizer predicts: instructed object (x, y), goal (x, y) [m].
SCENE_DIM = 4
# Typical spread of the positions [m]: brings the loss to about unit size.
SCALE_M = 0.1


class SceneLocalizer(nn.Module):
    """``image (B, 3, H, W)`` in [0, 1], ``lang (B, L)`` normalized -> scene state ``(B, 4)``."""

    grid: torch.Tensor

    def __init__(self, config: SceneConfig, image_size: int, lang_dim: int) -> None:
        super().__init__()
        w = config.width
        self.convs = nn.ModuleList([
            nn.Conv2d(3, w, 5, stride=2, padding=2),
            nn.Conv2d(w, w, 3, padding=1),
            nn.Conv2d(w, 2 * w, 3, padding=1),
        ])  # fmt: skip
        self.heatmaps = nn.Conv2d(2 * w, config.num_slots + 1, 1)  # slots..., goal
        self.select = nn.Linear(lang_dim, config.num_slots)
        g = -(-image_size // 2)
        c = (torch.arange(g, dtype=torch.float32) + 0.5) / g * 2 - 1
        yy, xx = torch.meshgrid(c, c, indexing='ij')
        self.register_buffer('grid', torch.stack([xx, yy], -1).reshape(-1, 2), persistent=False)
        # Image position -> table position; the camera is fixed, so this is one smooth map.
        self.object_map = _point_map()
        self.goal_map = _point_map()
        self.num_slots = config.num_slots

    def heads(self, image: torch.Tensor, lang: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(objects (B, K, 2) [m], selection (B, K) probabilities, goal (B, 2) [m])``."""
        h = (image - 0.5) / 0.25
        for conv in self.convs:
            h = F.gelu(conv(h))
        attn = self.heatmaps(h).flatten(2).softmax(-1)  # (B, K + 1, h * w)
        uv = attn @ self.grid  # (B, K + 1, 2) expected image position in [-1, 1]
        objects = self.object_map(uv[:, : self.num_slots])
        goal = self.goal_map(uv[:, self.num_slots])
        return objects, self.select(lang).softmax(-1), goal

    def forward(self, image: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        objects, selection, goal = self.heads(image, lang)
        picked = (selection[..., None] * objects).sum(1)  # ~ the argmax slot once trained
        return torch.cat([picked, goal], -1)

    def loss(
        self, image: torch.Tensor, lang: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixture loss against ``target (B, 4)`` [m] (rows with NaN are skipped) and the
        prediction ``(B, 4)``."""
        objects, selection, goal = self.heads(image, lang)
        pred = torch.cat([(selection[..., None] * objects).sum(1), goal], -1)
        known = torch.isfinite(target).all(-1)
        if not bool(known.any()):
            return 0.0 * pred.sum(), pred  # keeps every parameter in the graph (DDP)
        t = target[known] / SCALE_M
        per_slot = (objects[known] / SCALE_M - t[:, None, :2]).pow(2).sum(-1)  # (b, K)
        object_loss = (selection[known] * per_slot).sum(-1)
        goal_loss = (goal[known] / SCALE_M - t[:, 2:]).pow(2).sum(-1)
        return (object_loss + goal_loss).mean() / SCENE_DIM, pred


def _point_map() -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 2)
    )
