"""Image preprocessing shared by training and deployment, so both see identical pixels."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ['resize_square']


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (size, size, 3) uint8 RGB.

    INTER_AREA averages source pixels, so small objects (a 4 cm block at 224 px) survive the
    downscale instead of aliasing away.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) image, got shape {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'empty {image.shape[1]}x{image.shape[0]} image')
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
