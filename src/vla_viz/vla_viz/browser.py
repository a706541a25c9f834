"""Screenshots of a web page with headless Chromium, for tests and docs of the browser view.

    python -m vla_viz.browser URL out.png [--wait 60] [--size 1600x1000]

Chromium is driven over its DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages separated by NUL bytes on file descriptors 3 and 4), so nothing but the standard library
and a ``chromium`` binary is needed. WebGL runs on SwiftShader (software), so a machine without a
GPU renders WebGL/WebGPU pages. :func:`screenshots` yields a PNG every ``period`` seconds until the
caller is satisfied, because a page like rerun's viewer needs an unknown time to load its wasm.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Iterator, Sequence
import contextlib
import json
import os
from pathlib import Path
import select
import shutil
import subprocess
import sys
import tempfile
import time

__all__ = ['BrowserError', 'chromium_binary', 'screenshots']

# Headless, no network beyond the page, software WebGL (SwiftShader through ANGLE).
FLAGS = (
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--use-gl=angle',
    '--use-angle=swiftshader',
    '--enable-unsafe-swiftshader',
    '--hide-scrollbars',
    '--remote-debugging-pipe',
)


class BrowserError(RuntimeError):
    """Chromium is missing, died, or did not answer."""


def chromium_binary() -> str | None:
    for name in ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Pipe:
    """The DevTools protocol over fds: requests by id, events skipped."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self._w, self._r = write_fd, read_fd
        self._buffer = b''
        self._id = 0

    def call(self, method: str, timeout: float = 30.0, session: str = '', **params) -> dict:
        self._id += 1
        message = {'id': self._id, 'method': method, 'params': params}
        if session:
            message['sessionId'] = session
        os.write(self._w, json.dumps(message).encode() + b'\0')
        deadline = time.monotonic() + timeout
        while True:
            while b'\0' in self._buffer:
                raw, _, self._buffer = self._buffer.partition(b'\0')
                reply = json.loads(raw)
                if reply.get('id') == self._id:
                    if 'error' in reply:
                        raise BrowserError(f'{method}: {reply["error"].get("message")}')
                    return reply.get('result', {})
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise BrowserError(f'{method}: no answer within {timeout:g} s')
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise BrowserError(f'{method}: chromium closed the pipe')
            self._buffer += chunk


@contextlib.contextmanager
def _chromium(binary: str, size: tuple[int, int]) -> Iterator[_Pipe]:
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def child_fds() -> None:  # the protocol's fds: 3 reads commands, 4 writes answers
        r, w = os.dup(to_child_r), os.dup(from_child_w)  # above 4, so dup2 cannot clobber them
        os.dup2(r, 3)
        os.dup2(w, 4)

    with tempfile.TemporaryDirectory(prefix='vla_chromium_') as profile:
        args = [binary, *FLAGS, f'--user-data-dir={profile}', f'--window-size={size[0]},{size[1]}']
        proc = subprocess.Popen(
            [*args, 'about:blank'], pass_fds=(3, 4), preexec_fn=child_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_child_r)
        os.close(from_child_w)
        try:
            yield _Pipe(to_child_w, from_child_r)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_child_w)
            os.close(from_child_r)


def screenshots(
    url: str, *, size: tuple[int, int] = (1600, 1000), period: float = 2.0, timeout: float = 120.0
) -> Iterator[bytes]:
    """Open ``url`` and yield a PNG of the page every ``period`` seconds for ``timeout`` seconds
    (stop iterating when one shows what you need). BrowserError if Chromium is not installed."""
    binary = chromium_binary()
    if binary is None:
        raise BrowserError('no chromium binary (Debian: apt-get install chromium)')
    with _chromium(binary, size) as pipe:
        target = pipe.call('Target.createTarget', url='about:blank')['targetId']
        session = pipe.call('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        pipe.call(
            'Emulation.setDeviceMetricsOverride', session=session, width=size[0], height=size[1],
            deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        pipe.call('Page.navigate', session=session, url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(period)
            shot = pipe.call('Page.captureScreenshot', session=session, format='png', timeout=180.0)
            yield base64.b64decode(shot['data'])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m vla_viz.browser', description=__doc__.split('\n')[0]
    )
    parser.add_argument('url')
    parser.add_argument('output', type=Path, help='PNG file')
    parser.add_argument('--wait', type=float, default=60.0, help='seconds before the screenshot')
    parser.add_argument('--size', default='1600x1000', help='WIDTHxHEIGHT in pixels')
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        print(f'error: --size {args.size!r} is not WIDTHxHEIGHT', file=sys.stderr)
        return 2
    try:
        shots = screenshots(args.url, size=(width, height), period=args.wait, timeout=args.wait)
        png = next(shots)
        shots.close()
    except BrowserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(png)
    print(f'{args.output}: {len(png)} bytes')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
