"""sensor_msgs/Image <-> numpy without cv_bridge (which no registry ships for our wheels).

Rows may be padded (``step`` > width * pixel size) and data may be big-endian; both are honoured.
Results match cv_bridge's ``imgmsg_to_cv2``/``cv2_to_imgmsg`` for the encodings listed here.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
import sys

import numpy as np
from sensor_msgs.msg import Image

__all__ = ['ENCODINGS', 'ImageEncodingError', 'image_to_numpy', 'numpy_to_image']


class ImageEncodingError(ValueError):
    """An image cannot be converted: unknown encoding, wrong size, wrong dtype or layout."""


@dataclass(frozen=True)
class _Encoding:
    dtype: np.dtype
    channels: int


ENCODINGS: dict[str, _Encoding] = {
    'rgb8': _Encoding(np.dtype(np.uint8), 3),
    'bgr8': _Encoding(np.dtype(np.uint8), 3),
    'rgba8': _Encoding(np.dtype(np.uint8), 4),
    'bgra8': _Encoding(np.dtype(np.uint8), 4),
    'mono8': _Encoding(np.dtype(np.uint8), 1),
    '8UC1': _Encoding(np.dtype(np.uint8), 1),
    '8UC3': _Encoding(np.dtype(np.uint8), 3),
    'mono16': _Encoding(np.dtype(np.uint16), 1),
    '16UC1': _Encoding(np.dtype(np.uint16), 1),
    '32FC1': _Encoding(np.dtype(np.float32), 1),
}


def _lookup(encoding: str) -> _Encoding:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageEncodingError(
            f"unsupported image encoding '{encoding}'; supported: {', '.join(ENCODINGS)}"
        ) from None


def image_to_numpy(msg: Image) -> np.ndarray:
    """(H, W) or (H, W, C) array of the image in native byte order.

    Zero-copy where possible: the result is a read-only view of ``msg.data`` (copy it to modify or
    to keep it beyond the message's life); big-endian data is byte-swapped into a new array.
    """
    enc = _lookup(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    pixel_bytes = enc.channels * enc.dtype.itemsize
    if step < width * pixel_bytes:
        raise ImageEncodingError(
            f'step {step} is smaller than width {width} x {pixel_bytes} bytes per '
            f"'{msg.encoding}' pixel"
        )
    size = len(msg.data)
    if size != step * height:
        raise ImageEncodingError(
            f'image data has {size} bytes, expected step x height = {step} x {height} = '
            f'{step * height}'
        )
    dtype = enc.dtype.newbyteorder('>' if msg.is_bigendian else '<')
    data = msg.data
    if not isinstance(data, (bytes, bytearray, array.array, memoryview)):
        data = bytes(data)  # a plain list, as a hand-built message may hold
    buffer = memoryview(data).cast('B') if size else b''
    view = np.ndarray(
        shape=(height, width, enc.channels),
        dtype=dtype,
        buffer=buffer,
        strides=(step, pixel_bytes, enc.dtype.itemsize),
    )
    if not dtype.isnative:
        view = view.astype(enc.dtype)
    else:
        view.flags.writeable = False
    return view[:, :, 0] if enc.channels == 1 else view


def numpy_to_image(
    image: np.ndarray,
    encoding: str,
    *,
    frame_id: str = '',
    stamp: object | None = None,
    step: int | None = None,
) -> Image:
    """An Image message holding ``image``: C-contiguous (H, W) or (H, W, C) of the encoding's dtype.

    ``stamp`` is a builtin_interfaces/Time (or None: zero). ``step`` pads every row to that many
    bytes (default: no padding).
    """
    enc = _lookup(encoding)
    if not isinstance(image, np.ndarray):
        raise ImageEncodingError(f'expected a numpy array, got {type(image).__name__}')
    if image.ndim == 2 and enc.channels == 1:
        height, width = image.shape
    elif image.ndim == 3 and image.shape[2] == enc.channels:
        height, width = image.shape[:2]
    else:
        expected = '(H, W)' if enc.channels == 1 else f'(H, W, {enc.channels})'
        raise ImageEncodingError(
            f"'{encoding}' needs an array of shape {expected}, got {image.shape}"
        )
    if image.dtype.kind != enc.dtype.kind or image.dtype.itemsize != enc.dtype.itemsize:
        raise ImageEncodingError(f"'{encoding}' needs dtype {enc.dtype}, got {image.dtype}")
    if not image.flags.c_contiguous:
        raise ImageEncodingError(
            'image array is not C-contiguous (a slice or transpose?); pass '
            'np.ascontiguousarray(image)'
        )
    row_bytes = width * enc.channels * enc.dtype.itemsize
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ImageEncodingError(f'step {step} is smaller than a row of {row_bytes} bytes')
    big_endian = image.dtype.byteorder == '>' or (
        image.dtype.byteorder == '=' and sys.byteorder == 'big'
    )
    raw = image.tobytes()
    if step != row_bytes:
        padded = np.zeros((height, step), dtype=np.uint8)
        padded[:, :row_bytes] = np.frombuffer(raw, dtype=np.uint8).reshape(height, row_bytes)
        raw = padded.tobytes()
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(big_endian)
    msg.step = step
    msg.data = array.array('B', raw)  # the fast path of the generated setter (see tests)
    return msg
