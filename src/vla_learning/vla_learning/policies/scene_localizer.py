"""Where are the instructed object and the goal? A small convolutional localizer on one camera.

Measured on the sim tasks: the keypoint VLA locates the named block to about 1-2 cm on the 300
training layouts but only to 3-11 cm (median) on new ones: its trunk memorizes layouts. A policy
given the true positions instead succeeds in 50 of 60 episodes (``state_oracle``). This localizer
is built to generalize across layouts: two streams of convolutions at stride 2 (cells of about
1 cm on the table at 96 px), one for the named object and one for the goal, end in heatmaps whose
spatial-softmax positions tiny maps turn into table coordinates. Nothing in it can memorize a
layout.

The object stream has several heatmaps and the instruction chooses among them, each training
instruction starting on its own (weight imprinting): so "red" trains its heatmaps on red alone.
Conditioning the convolutions on the instruction instead (FiLM) left the named block at 2.8 cm
after 2250 pretraining steps; with imprinted heatmaps seed 0 had it to 0.5 cm by step 750.

A heatmap and its map to the table must find each other: until the heatmap leans to the target
the map has nothing to fit, and until the map is oriented the heatmap gets no direction. That
start took from 250 to over 2000 steps depending on the seed alone, and with one heatmap per
instruction one seed in three never grounded a block. So each instruction and the goal train a
few candidates side by side (more draws of that start, for a few 1x1 filters and tiny maps), and
the one with the least running error is used.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from vla_learning.policies.configuration_common import SceneConfig
from vla_learning.policies.layers import Standardize, cell_centres

__all__ = ['SceneLocalizer']

# Scene-state layout the localizer predicts [m].
SCENE_NAMES = ('object_x', 'object_y', 'goal_x', 'goal_y')
SCENE_DIM = len(SCENE_NAMES)
# Typical spread of the positions [m]: brings the loss to about unit size.
SCALE_M = 0.1
# Weight of each training batch in a heatmap's running error.
ERROR_SMOOTHING = 0.02
# Running errors [loss units] pick among candidate heatmaps on this scale, capped so that an
# instruction's own heatmaps always outrank another instruction's.
ERROR_TEMPERATURE = 0.01
ERROR_CAP = 10.0
# Imprinted selection logit of a training instruction for its own object heatmaps; against the
# others' (about -SELECT_GAIN / 2 for three centred instructions) the choice starts on them alone.
SELECT_GAIN = 10.0


class SceneLocalizer(nn.Module):
    """``image (B, 3, H, W)`` in [0, 1], ``lang (B, L)`` normalized -> scene state ``(B, 4)``."""

    object_error: torch.Tensor
    goal_error: torch.Tensor

    def __init__(self, config: SceneConfig, image_size: int, lang_dim: int) -> None:
        super().__init__()
        # One stream each: sharing the convolutions, whichever of the two was found first held
        # the features and the other stalled for a thousand steps.
        self.object = _PointStream(config, image_size, config.object_heatmaps)
        self.goal = _PointStream(config, image_size, config.goal_candidates)
        self.select = nn.Linear(lang_dim, config.object_heatmaps)  # the instruction's choice
        # Running squared error of each heatmap, which picks among an instruction's candidates.
        self.register_buffer('object_error', torch.zeros(config.object_heatmaps))
        self.register_buffer('goal_error', torch.zeros(config.goal_candidates))

    @torch.no_grad()
    def imprint(self, instructions: torch.Tensor) -> None:
        """Start the distinct training ``instructions (K, L)`` (normalized) on heatmaps of
        their own, heatmap ``j`` on instruction ``j mod K`` (weight imprinting): each gets
        ``object_heatmaps // K`` candidates. Learned from there, the choice keeps paraphrases
        on their instruction's heatmaps."""
        own = torch.arange(self.select.out_features) % len(instructions)
        self.select.weight.copy_(SELECT_GAIN * F.normalize(instructions[own], dim=-1))
        self.select.bias.zero_()

    def _streams(
        self, image: torch.Tensor, lang: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Object heatmaps' estimates ``(B, M, 2)``, the instruction's logits on them
        ``(B, M)`` and the goal candidates' estimates ``(B, K, 2)``."""
        return self.object(image), self.select(lang), self.goal(image)

    def _estimate(
        self, objects: torch.Tensor, logits: torch.Tensor, goals: torch.Tensor
    ) -> torch.Tensor:
        """Among the instruction's object heatmaps, and among the goal candidates, the ones
        with the least running error."""
        object_xy = _pick(objects, logits.log_softmax(-1), self.object_error)
        goal_xy = _pick(goals, torch.zeros_like(self.goal_error), self.goal_error)
        return torch.cat([object_xy, goal_xy], -1)

    def forward(self, image: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        return self._estimate(*self._streams(image, lang))

    def loss(
        self, image: torch.Tensor, lang: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared error [``SCALE_M`` units] against ``target (B, 4)`` [m], rows with NaN
        skipped, and the estimate ``(B, 4)``. The object term is each heatmap's error weighted
        by the instruction's choice (so each of its candidates trains, none blends with
        another instruction's); the goal term trains every candidate. In training mode it also
        updates the running errors."""
        objects, logits, goals = self._streams(image, lang)
        estimate = self._estimate(objects, logits, goals)
        known = torch.isfinite(target).all(-1)
        if not bool(known.any()):  # keeps every parameter in the graph (DDP)
            return 0.0 * (objects.sum() + logits.sum() + goals.sum()), estimate
        target, choice = target[known], logits[known].softmax(-1)

        def error(points: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
            return ((points - xy[:, None]) / SCALE_M).pow(2).mean(-1)  # (B, n)

        object_error = error(objects[known], target[:, :2])  # (B, M)
        object_term = (choice * object_error).sum(-1).mean()
        goal_error = error(goals[known], target[:, 2:]).mean(0)  # (K,)
        if self.training:
            with torch.no_grad():
                mass = choice.sum(0)  # how much of the batch chose each heatmap
                seen = (choice * object_error).sum(0) / mass.clamp_min(1e-6)
                updated = self.object_error.lerp(seen, ERROR_SMOOTHING)
                self.object_error.copy_(torch.where(mass > 0.5, updated, self.object_error))
                self.goal_error.lerp_(goal_error, ERROR_SMOOTHING)
        return 0.5 * (object_term + goal_error.mean()), estimate


def _pick(points: torch.Tensor, log_choice: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """``points (B, n, 2)`` weighted by the choice ``log_choice (B, n) or (n,)`` sharpened
    towards the least running ``error (n,)``."""
    weight = (log_choice - (error / ERROR_TEMPERATURE).clamp(max=ERROR_CAP)).softmax(-1)
    return (weight[..., None] * points).sum(-2)


class _PointStream(nn.Module):
    """Convolutions -> ``n`` spatial-softmax heatmaps -> each one's expected image position
    (sub-cell precise) -> a table position each, ``(B, n, 2)``; from the image in [0, 1]."""

    grid: torch.Tensor

    def __init__(self, config: SceneConfig, image_size: int, n: int) -> None:
        super().__init__()
        width = config.width
        first: list[nn.Module]
        self.standardize: nn.Module
        if config.stem == 'efficientnet-lite0':
            self.standardize = nn.Identity()  # the stem standardizes as ImageNet did
            first = [_EfficientNetStem(image_size), nn.Conv2d(16, width, 3, padding=1)]
        else:
            self.standardize = Standardize(0.5, 0.25)
            first = [nn.Conv2d(3, width, 5, stride=2, padding=2)]
        self.convs = nn.Sequential(
            *first, nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GELU(),
        )  # fmt: skip
        self.heatmaps = nn.Conv2d(2 * width, n, 1)
        side = -(-image_size // 2)  # the stride-2 first layer's output side
        self.register_buffer('grid', cell_centres(side), persistent=False)
        # Image position -> table position; the camera is fixed, so each is one smooth map.
        self.point_maps = nn.ModuleList(
            nn.Sequential(
                nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 2)
            )
            for _ in range(n)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.convs(self.standardize(image))
        attn = self.heatmaps(features).flatten(2).softmax(-1)  # (B, n, h * w)
        uv = attn @ self.grid  # (B, n, 2)
        return torch.stack([m(uv[:, i]) for i, m in enumerate(self.point_maps)], 1)


class _EfficientNetStem(nn.Module):
    """EfficientNet-Lite0's stem and first MBConv block with their ImageNet weights: the image
    in [0, 1] -> ``(B, 16, S / 2, S / 2)``, colour and edge features at the stride and
    resolution of the localizer's own first convolution."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        from vla_learning.policies import vision

        net = vision.load_efficientnet_lite0(image_size, pretrained=True)
        self.standardize = Standardize(vision.IMAGENET_MEAN, vision.IMAGENET_STD)
        self.conv, self.bn, self.act = net._conv_stem, net._bn0, net._swish
        self.block = net._blocks[0]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.block(self.act(self.bn(self.conv(self.standardize(image)))))
