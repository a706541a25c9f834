"""A JSON-lines log that any thread appends to and one thread writes: per-event timing records of
nodes (what a graph evaluation joins into per-episode latency), without file I/O on a control or
inference thread."""

from __future__ import annotations

from collections import deque
import json
from pathlib import Path
import threading

__all__ = ['JsonLinesLog']


class JsonLinesLog:
    """``append`` from any thread (a deque append, no I/O); ``flush`` writes what is queued (call
    it from a timer) and ``close`` writes the rest."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open('a')
        self._queue: deque[dict] = deque()
        self._lock = threading.Lock()  # flush from a timer and close from shutdown

    def append(self, record: dict) -> None:
        self._queue.append(record)

    def flush(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            while self._queue:
                self._file.write(json.dumps(self._queue.popleft()) + '\n')
            self._file.flush()

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._file.close()
