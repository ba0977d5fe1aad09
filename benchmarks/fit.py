"""FIT benchmark: FIT, FIT without MQM, FIT without LSS and the TFRS two-tower in BCE mode, on the
pre-ranking protocol, through the shared quality harness.

A configuration of ``benchmarks/quality.py`` (same protocol, grid rule, seeds, result format). FIT
reuses the YouTubeDNN two-tower's selected setting (learning rate, embedding width; the baseline
result files hold it) and tunes its meta size N in {16, 4} on validation AUC; the ablations
``fit-no_mqm`` (history mean-pooled, no meta query) and ``fit-no_lss`` (dot product of the heads
instead of the LSS) reuse FIT's selected setting.

Examples (the FIT rows of BENCHMARKS.md):

    python benchmarks/fit.py --datasets=ml-100k --seeds=0,1,2
    python benchmarks/fit.py --datasets=ml-1m --seeds=0
"""

from __future__ import annotations

import quality  # noqa: E402
from absl import app, flags  # noqa: E402


def main(argv: list[str]) -> None:
    if flags.FLAGS["protocols"].using_default_value:
        flags.FLAGS.protocols = ["preranking"]
    quality.run_configuration(argv, "fit", models=["fit", "fit-no_mqm", "fit-no_lss"])


if __name__ == "__main__":
    app.run(main)
