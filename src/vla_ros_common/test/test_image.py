import numpy as np
import pytest
from sensor_msgs.msg import Image

from vla_ros_common.image import ENCODINGS, ImageEncodingError, image_to_numpy, numpy_to_image

REQUIRED = ['rgb8', 'bgr8', 'mono8', 'mono16', '16UC1', '32FC1']


def _random(encoding: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    enc = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    if enc.dtype.kind == 'f':
        return rng.standard_normal(shape).astype(enc.dtype)
    return rng.integers(0, np.iinfo(enc.dtype).max, size=shape, endpoint=True).astype(enc.dtype)


@pytest.mark.parametrize('encoding', REQUIRED)
@pytest.mark.parametrize(('height', 'width'), [(4, 6), (3, 7), (5, 1)])
def test_round_trip(encoding, height, width):
    image = _random(encoding, height, width)
    msg = numpy_to_image(image, encoding, frame_id='cam_optical_frame')
    assert (msg.height, msg.width, msg.encoding) == (height, width, encoding)
    assert msg.step == width * image.itemsize * ENCODINGS[encoding].channels
    assert len(msg.data) == msg.step * height
    back = image_to_numpy(msg)
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize('encoding', REQUIRED)
def test_odd_width_with_padded_step(encoding):
    image = _random(encoding, 5, 7, seed=3)
    row = 7 * image.itemsize * ENCODINGS[encoding].channels
    step = row + 5  # odd padding, as some drivers align rows
    msg = numpy_to_image(image, encoding, step=step)
    assert msg.step == step
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(5, step)
    assert not raw[:, row:].any()
    np.testing.assert_array_equal(image_to_numpy(msg), image)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1', '32FC1'])
def test_big_endian_data_is_read_in_native_order(encoding):
    image = _random(encoding, 3, 5, seed=7)
    big = image.astype(image.dtype.newbyteorder('>'))
    msg = Image(height=3, width=5, encoding=encoding, is_bigendian=1, step=5 * image.itemsize)
    msg.data = big.tobytes()
    out = image_to_numpy(msg)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, image)
    # and writing a big-endian array marks the message so
    assert numpy_to_image(big, encoding).is_bigendian == 1
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(big, encoding)), image)


def test_result_is_a_read_only_view_of_the_message():
    msg = numpy_to_image(_random('rgb8', 4, 4), 'rgb8')
    out = image_to_numpy(msg)
    assert not out.flags.writeable
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_channel_order_is_preserved_not_converted():
    pixel = np.array([[[10, 20, 30]]], np.uint8)
    assert image_to_numpy(numpy_to_image(pixel, 'bgr8'))[0, 0].tolist() == [10, 20, 30]


def test_unknown_encoding():
    with pytest.raises(ImageEncodingError, match=r"unsupported image encoding 'yuv422'.*rgb8"):
        image_to_numpy(Image(height=1, width=1, step=2, encoding='yuv422', data=[0, 0]))
    with pytest.raises(ImageEncodingError, match='unsupported'):
        numpy_to_image(np.zeros((2, 2), np.uint8), 'bayer_xyz9')


def test_wrong_data_length():
    msg = numpy_to_image(_random('rgb8', 4, 5), 'rgb8')
    msg.data = bytes(len(msg.data) - 1)
    with pytest.raises(ImageEncodingError, match=r'59 bytes, expected step x height = 15 x 4 = 60'):
        image_to_numpy(msg)


def test_step_too_small():
    msg = Image(height=2, width=4, encoding='mono16', step=6, data=bytes(12))
    with pytest.raises(ImageEncodingError, match='step 6 is smaller'):
        image_to_numpy(msg)


def test_non_contiguous_array():
    image = _random('rgb8', 6, 8)[:, ::2]
    with pytest.raises(ImageEncodingError, match=r'not C-contiguous.*ascontiguousarray'):
        numpy_to_image(image, 'rgb8')


@pytest.mark.parametrize(
    ('array', 'encoding', 'match'),
    [
        (np.zeros((2, 2, 3), np.float32), 'rgb8', 'needs dtype uint8'),
        (np.zeros((2, 2), np.uint8), 'rgb8', r'shape \(H, W, 3\)'),
        (np.zeros((2, 2, 3), np.uint16), 'mono16', r'shape \(H, W\)'),
        ([[1, 2]], 'mono8', 'numpy array'),
    ],
)
def test_wrong_array_for_encoding(array, encoding, match):
    with pytest.raises(ImageEncodingError, match=match):
        numpy_to_image(array, encoding)
