"""Helpers of vla_viz's tests: waiting for a condition, free ports, where a port listens."""

from __future__ import annotations

from pathlib import Path
import socket
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def listen_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (from /proc/net/tcp)."""
    out = set()
    for line in Path('/proc/net/tcp').read_text().splitlines()[1:]:
        fields = line.split()
        address, hex_port = fields[1].split(':')
        if fields[3] == '0A' and int(hex_port, 16) == port:  # 0A: LISTEN
            out.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return out


def wait_until(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)


@pytest.fixture
def wait():
    return wait_until


@pytest.fixture
def ports():
    return free_port


@pytest.fixture
def listening():
    return listen_addresses
