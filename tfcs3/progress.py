"""Progress for long steps: a bar (tqdm) or a one-line status, on a terminal only.

Shown when standard error is a terminal (never in logs, pipes or tests), unless
``TFCS3_PROGRESS`` says otherwise: ``1`` always, ``0`` never.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm  # the terminal bar: progress is shown on terminals only

T = TypeVar("T")
ENV = "TFCS3_PROGRESS"


def shown() -> bool:
    """Whether progress is shown (see the module docstring)."""
    forced = os.environ.get(ENV, "")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """``items`` with a progress bar that disappears when done.

    Example:
        >>> for start in progress(range(0, n, 512), desc="ranking", unit="batch"):
        ...     pass
    """
    yield from tqdm(items, total=total, desc=desc, unit=unit, leave=False, disable=not shown(), file=sys.stderr)


@contextmanager
def status(message: str) -> Iterator[None]:
    """Prints ``message ...`` before a step with no natural progress and ``done in N s`` after it."""
    if not shown():
        yield
        return
    print(f"{message} ...", end="", file=sys.stderr, flush=True)
    started = time.time()
    yield
    print(f" done in {time.time() - started:.1f} s", file=sys.stderr, flush=True)
