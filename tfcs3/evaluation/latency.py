"""Latency of serving calls: per-call timings, their percentiles, and interleaved comparisons.

Timings share the CPU with everything else on the machine: measure on an idle one, and compare
variants with :func:`interleaved_latency` so slow phases of the machine hit all of them alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np


def time_calls(
    fn: Callable[[Any], Any], requests: Sequence[Any], seconds: float = 5.0, min_calls: int = 20, warmup: int = 3
) -> np.ndarray:
    """Per-call latencies of ``fn(request)`` in milliseconds.

    Calls ``fn`` on the first ``warmup`` requests untimed (tracing, caches), then cycles over
    ``requests`` for about ``seconds``, and at least ``min_calls`` times.
    """
    if not requests:
        raise ValueError("time_calls needs at least one request")
    for request in list(requests)[:warmup]:
        fn(request)
    latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(latencies) < min_calls:
        request = requests[len(latencies) % len(requests)]
        t = time.perf_counter()
        fn(request)
        latencies.append(time.perf_counter() - t)
    return np.asarray(latencies) * 1000.0


def latency_summary(latencies_ms: np.ndarray, batch_size: int = 1) -> dict[str, float]:
    """``{"p50_ms", "p99_ms", "mean_ms", "calls", "queries_per_second"}`` of per-call latencies
    (``batch_size`` queries per call)."""
    lat = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "mean_ms": float(lat.mean()),
        "calls": int(lat.size),
        "queries_per_second": float(batch_size * lat.size / (lat.sum() / 1000.0)),
    }


def interleaved_latency(
    calls: Mapping[Hashable, tuple[Callable[..., Any], list[dict[str, Any]]]],
    rounds: int,
    seconds: float,
    verbose: bool = False,
) -> dict[Hashable, dict[str, float]]:
    """Times ``{label: (fn, request batches)}`` round-robin (``fn(**batch)``), ``rounds`` times for
    about ``seconds`` each, so machine noise is shared; per label the median over rounds of the
    per-round p50 and p99 latency (ms): ``{"p50_ms", "p99_ms"}``. ``verbose`` prints each round's
    end (a run takes about ``rounds * len(calls) * seconds``)."""
    p50s: dict[Hashable, list[float]] = {label: [] for label in calls}
    p99s: dict[Hashable, list[float]] = {label: [] for label in calls}
    for round_ in range(rounds):
        for label, (fn, batches) in calls.items():
            lat = time_calls(keyword_call(fn), batches, seconds)
            p50s[label].append(float(np.percentile(lat, 50)))
            p99s[label].append(float(np.percentile(lat, 99)))
        if verbose:
            print(f"latency round {round_ + 1} of {rounds} done", flush=True)
    return {
        label: {"p50_ms": float(np.median(p50s[label])), "p99_ms": float(np.median(p99s[label]))} for label in calls
    }


def keyword_call(fn: Callable[..., Any]) -> Callable[[Mapping[str, Any]], Any]:
    """``fn`` called with a request dictionary's items as keyword arguments."""
    return lambda request: fn(**request)
