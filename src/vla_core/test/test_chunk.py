import numpy as np
import pytest

from vla_core.chunk import ActionChunk


def _chunk(**kw):
    base = dict(stamp=10.0, dt=0.1, joint_names=('a', 'b'), targets=np.zeros((4, 2)))
    return ActionChunk(**{**base, **kw})


def test_times_and_immutability():
    chunk = _chunk(targets=np.arange(8.0).reshape(4, 2))
    np.testing.assert_allclose(chunk.times, [10.0, 10.1, 10.2, 10.3])
    assert chunk.end_time == pytest.approx(10.3)
    assert (chunk.horizon, chunk.dof) == (4, 2)
    with pytest.raises(ValueError):
        chunk.targets[0, 0] = 1.0


def test_source_array_is_copied():
    raw = np.zeros((2, 2))
    chunk = _chunk(targets=raw)
    raw[0, 0] = 5.0
    assert chunk.targets[0, 0] == 0.0


@pytest.mark.parametrize(
    ('kw', 'match'),
    [
        ({'targets': np.zeros((4, 3))}, 'DoF=2'),
        ({'targets': np.zeros((0, 2))}, 'H>=1'),
        ({'targets': np.full((2, 2), np.nan)}, 'NaN'),
        ({'dt': 0.0}, 'dt'),
        ({'stamp': float('inf')}, 'stamp'),
        ({'joint_names': ('a', 'a')}, 'unique'),
    ],
)
def test_invalid_chunks_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        _chunk(**kw)


def test_reordered_by_joint_names():
    chunk = _chunk(targets=np.array([[1.0, 2.0]]))
    swapped = chunk.reordered(['b', 'a'])
    np.testing.assert_array_equal(swapped.targets, [[2.0, 1.0]])
    with pytest.raises(ValueError, match='do not match'):
        chunk.reordered(['a', 'c'])
