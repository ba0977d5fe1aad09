"""``python -m tfcs3``: see :mod:`tfcs3.cli`."""

from tfcs3.cli import run

run()
