"""TensorRT engine cache keyed by everything that makes an engine valid.

An engine is only valid for the exact ONNX it was built from, the TensorRT version that built it,
the GPU model it was tuned on, its precision (and, for INT8, its calibration data) and its
builder options. The key covers all of them; a lookup also checks the stored metadata field by
field and the engine bytes' hash, so a stale, foreign or truncated engine is never reused
silently: it is reported and rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
import hashlib
import json
import logging
import os
from pathlib import Path

__all__ = ['PRECISIONS', 'EngineCache', 'EngineCacheKey']

_log = logging.getLogger(__name__)

PRECISIONS = ('fp32', 'fp16', 'int8')
_KEY_VERSION = 1  # bump when the key's meaning changes


@dataclass(frozen=True)
class EngineCacheKey:
    model_sha256: str  # of the ONNX file
    trt_version: str  # tensorrt.__version__
    gpu_name: str  # e.g. 'Orin (nvgpu)', 'NVIDIA H100 80GB HBM3'
    precision: str  # fp32 | fp16 | int8
    calibration_sha256: str = ''  # INT8 only: of the calibration observations
    builder_options: str = ''  # canonical text of shape profile, workspace, opt level

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {self.precision!r}')
        for name in ('model_sha256', 'trt_version', 'gpu_name'):
            if not getattr(self, name):
                raise ValueError(f'engine cache key needs {name}')
        if self.precision == 'int8' and not self.calibration_sha256:
            raise ValueError('an INT8 engine key needs the calibration data hash')

    def to_dict(self) -> dict[str, str | int]:
        return {'key_version': _KEY_VERSION, **asdict(self)}

    def digest(self) -> str:
        """Stable hex id (file name) of the key."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(',', ':'))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def file_stem(self) -> str:
        gpu = ''.join(c if c.isalnum() else '-' for c in self.gpu_name).strip('-').lower()[:24]
        return (
            f'{self.model_sha256[:12]}_{self.precision}_trt{self.trt_version}_{gpu}_{self.digest()}'
        )


class EngineCache:
    """``<dir>/<stem>.engine`` plus ``<stem>.json`` (key fields + engine sha256)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def paths(self, key: EngineCacheKey) -> tuple[Path, Path]:
        stem = key.file_stem()
        return self.directory / f'{stem}.engine', self.directory / f'{stem}.json'

    def lookup(self, key: EngineCacheKey) -> bytes | None:
        """The cached engine, or None (and the reason logged) if absent or not provably valid."""
        engine_path, meta_path = self.paths(key)
        if not engine_path.is_file() or not meta_path.is_file():
            _log.info('engine cache miss: %s', engine_path.name)
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            _log.warning('engine cache: unreadable metadata %s (%s); rebuilding', meta_path, err)
            return None
        if meta.get('key') != key.to_dict():
            _log.warning('engine cache: %s was built for a different key; rebuilding', engine_path)
            return None
        data = engine_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get('engine_sha256'):
            _log.warning('engine cache: %s is corrupt or truncated; rebuilding', engine_path)
            return None
        _log.info('engine cache hit: %s', engine_path.name)
        return data

    def store(self, key: EngineCacheKey, engine: bytes) -> Path:
        """Write atomically (engine first, metadata last: metadata is the commit marker)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        engine_path, meta_path = self.paths(key)
        meta = {'key': key.to_dict(), 'engine_sha256': hashlib.sha256(engine).hexdigest()}
        for path, payload in (
            (engine_path, engine),
            (meta_path, json.dumps(meta, indent=1).encode()),
        ):
            tmp = path.with_suffix(path.suffix + f'.tmp{os.getpid()}')
            tmp.write_bytes(payload)
            os.replace(tmp, path)
        return engine_path

    def get_or_build(self, key: EngineCacheKey, build: Callable[[], bytes]) -> tuple[bytes, bool]:
        """``(engine bytes, built_now)``."""
        cached = self.lookup(key)
        if cached is not None:
            return cached, False
        engine = build()
        self.store(key, engine)
        return engine, True
