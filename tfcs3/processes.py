"""Whether a process still runs: the test that tells a killed writer's leftovers (temporary
export and preparation folders, named with their writer's pid) from a live writer's."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts as alive).

    Example:
        >>> alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
