"""Building /diagnostics messages (diagnostic_msgs) from plain values."""

from __future__ import annotations

from collections.abc import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

__all__ = ['ERROR', 'OK', 'STALE', 'WARN', 'diagnostic_array', 'status']

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
STALE = DiagnosticStatus.STALE


def status(
    name: str, level: bytes | int, message: str, values: Mapping[str, object], hardware_id: str = ''
) -> DiagnosticStatus:
    level_byte = level if isinstance(level, bytes) else bytes([level])
    return DiagnosticStatus(
        level=level_byte,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()],
    )


def diagnostic_array(stamp: object, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray(status=statuses)
    msg.header.stamp = stamp
    return msg


def _fmt(value: object) -> str:
    return f'{value:.4g}' if isinstance(value, float) else str(value)
