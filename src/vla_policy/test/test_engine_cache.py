"""Engine cache keys and stale-engine detection (no TensorRT needed)."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from vla_policy.engine_cache import EngineCache, EngineCacheKey

BASE = EngineCacheKey(
    model_sha256='a' * 64,
    trt_version='10.3.0',
    gpu_name='Orin (nvgpu)',
    precision='fp16',
    builder_options='max_batch=1;workspace_mib=1024;opt_level=3',
)


@pytest.mark.parametrize(
    ('field', 'value'),
    [
        ('model_sha256', 'b' * 64),
        ('trt_version', '10.4.0'),
        ('gpu_name', 'NVIDIA H100 80GB HBM3'),
        ('precision', 'fp32'),
        ('builder_options', 'max_batch=4;workspace_mib=1024;opt_level=3'),
    ],
)
def test_key_changes_with_each_component(field: str, value: str) -> None:
    other = dataclasses.replace(BASE, **{field: value})
    assert other.digest() != BASE.digest()
    assert other.file_stem() != BASE.file_stem()


def test_int8_key_depends_on_calibration_data() -> None:
    a = dataclasses.replace(BASE, precision='int8', calibration_sha256='1' * 64)
    b = dataclasses.replace(BASE, precision='int8', calibration_sha256='2' * 64)
    assert len({a.digest(), b.digest(), BASE.digest()}) == 3
    with pytest.raises(ValueError, match='calibration'):
        dataclasses.replace(BASE, precision='int8')
    with pytest.raises(ValueError, match='precision'):
        dataclasses.replace(BASE, precision='bf17')


def test_digest_is_stable() -> None:
    assert BASE.digest() == EngineCacheKey(**dataclasses.asdict(BASE)).digest()


def test_store_lookup_and_never_reuse_stale(tmp_path, caplog) -> None:
    cache = EngineCache(tmp_path)
    assert cache.lookup(BASE) is None
    builds = []
    engine, built = cache.get_or_build(BASE, lambda: builds.append(1) or b'ENGINE')
    assert (engine, built) == (b'ENGINE', True)
    assert cache.get_or_build(BASE, lambda: b'NEW') == (b'ENGINE', False)
    # A different key never sees the first engine.
    assert cache.lookup(dataclasses.replace(BASE, trt_version='10.4.0')) is None

    engine_path, meta_path = cache.paths(BASE)
    with caplog.at_level(logging.WARNING):
        engine_path.write_bytes(b'ENGI')  # truncated write
        assert cache.lookup(BASE) is None
        assert 'corrupt' in caplog.text
        engine_path.write_bytes(b'ENGINE')
        meta = json.loads(meta_path.read_text())
        meta['key']['gpu_name'] = 'other GPU'  # a file renamed/copied from another machine
        meta_path.write_text(json.dumps(meta))
        assert cache.lookup(BASE) is None
        assert 'different key' in caplog.text
    assert cache.get_or_build(BASE, lambda: b'REBUILT') == (b'REBUILT', True)
    assert cache.lookup(BASE) == b'REBUILT'
