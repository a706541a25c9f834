import math

from vla_sensors.diagnostics import ClockOffsetTracker, LatencyWindow, RateMeter


def test_rate_meter_uses_the_window():
    r = RateMeter(window=1.0)
    for i in range(31):
        r.tick(10.0 + i / 30.0)
    assert math.isclose(r.rate(), 30.0, rel_tol=1e-6)
    assert r.rate(now=20.0) == 0.0  # silent for 9 s
    assert RateMeter().rate() == 0.0


def test_latency_window_percentiles():
    w = LatencyWindow(size=100)
    assert math.isnan(w.percentile(50))
    for v in range(200):
        w.add(v / 1000.0)
    assert w.count == 200 and len(w.values()) == 100
    assert math.isclose(w.percentile(50), 0.1495)


def test_clock_offset_tracks_minimum_delay_and_drift():
    t = ClockOffsetTracker(drift=1e-3)
    assert t.to_host(1.0, 101.005) == 101.005
    assert math.isclose(t.to_host(2.0, 102.001), 102.001)  # smaller delay wins
    # A later, larger delay may only raise the offset by drift * elapsed host time.
    assert math.isclose(t.to_host(3.0, 103.020), 103.001 + 1e-3 * 1.019)
