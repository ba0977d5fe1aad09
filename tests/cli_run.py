"""The command line in a fresh process, for the CLI tests."""

import os
import subprocess
import sys


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tfcs3", *args], capture_output=True, text=True, env=full_env, timeout=600
    )
