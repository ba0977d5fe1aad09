import numpy as np
import pytest

from tfcs3.evaluation import interleaved_latency, latency_summary, time_calls


def test_time_calls_warms_up_then_cycles_over_the_requests():
    seen = []
    lat = time_calls(seen.append, ["a", "b", "c"], seconds=0.0, min_calls=7, warmup=2)
    assert len(lat) == 7 and (lat >= 0).all()
    assert seen == ["a", "b"] + ["a", "b", "c", "a", "b", "c", "a"]
    with pytest.raises(ValueError, match="at least one request"):
        time_calls(seen.append, [])


def test_latency_summary_percentiles_and_throughput():
    summary = latency_summary(np.array([1.0, 2.0, 3.0, 4.0]), batch_size=8)
    assert summary["p50_ms"] == pytest.approx(2.5) and summary["mean_ms"] == pytest.approx(2.5)
    assert summary["calls"] == 4
    assert summary["queries_per_second"] == pytest.approx(8 * 4 / 0.010)  # 32 queries in 10 ms


def test_interleaved_latency_times_every_label_each_round():
    calls = {label: [] for label in ("x", "y")}
    timed = interleaved_latency(
        {label: (lambda v, log=log: log.append(v), [{"v": 1}]) for label, log in calls.items()}, rounds=3, seconds=0.0
    )
    assert set(timed) == {"x", "y"} and all(set(t) == {"p50_ms", "p99_ms"} for t in timed.values())
    assert all(len(log) == 3 * (1 + 20) for log in calls.values())  # per round: 1 warm-up + 20 timed
