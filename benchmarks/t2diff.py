"""T2Diff benchmark: T2Diff, T2Diff without diffusion, without drift preparation, next to the
YouTubeDNN two-tower, on the retrieval protocol, through the shared quality harness.

A configuration of ``benchmarks/quality.py`` (same protocol, grid rule, seeds, result format).
T2Diff reuses the YouTubeDNN two-tower's selected setting (the baseline result files hold it) and
keeps the diffusion weight lambda = 1 (with the two stop-gradients and Adam it only rescales the
U-Net's own gradient, so tuning it buys nothing); the ablations
``t2diff-no_diffusion`` (no intent token) and ``t2diff-no_drift`` (the raw shifted sequence is
diffused) reuse T2Diff's selected setting; so does ``t2diff-time_lag`` (not run by default: the
same model on data with the history's time-gap buckets, the paper's optional time lag).

Examples:

    python benchmarks/t2diff.py --datasets=ml-100k --seeds=0,1,2
    python benchmarks/t2diff.py --datasets=ml-1m,beauty --seeds=0
    python benchmarks/t2diff.py --name=t2diff-time-lag --models=t2diff-time_lag --datasets=ml-100k --seeds=0,1,2
"""

from __future__ import annotations

import quality  # noqa: E402
from absl import app  # noqa: E402


def main(argv: list[str]) -> None:
    quality.run_configuration(argv, "t2diff", models=["t2diff", "t2diff-no_diffusion", "t2diff-no_drift"])


if __name__ == "__main__":
    app.run(main)
