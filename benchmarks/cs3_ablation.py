"""CS3 ablation: backbone, +CAS, +CTS, +CMS and full CS3, through the shared quality harness.

A configuration of ``benchmarks/quality.py`` (same protocol, grid rule, seeds, result format):
every CS3 variant reuses its backbone's selected setting (run the backbone first; the baseline
result files already hold YouTubeDNN and DSSM) and keeps the paper's alpha = beta = 0.8, one CAS
cycle, a DCN-v2 ranker. Variant labels: ``<backbone>+cas``, ``<backbone>+cts``, ``<backbone>+cms``
and ``cs3_<backbone>`` (all three).

Examples (the CS3 rows of BENCHMARKS.md):

    python benchmarks/cs3_ablation.py --backbones=youtubednn,dssm --datasets=ml-100k \\
        --protocols=retrieval,preranking --seeds=0,1,2
    python benchmarks/cs3_ablation.py --backbones=youtubednn --datasets=ml-1m --protocols=preranking --seeds=0
"""

from __future__ import annotations

import quality  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_list("backbones", ["youtubednn"], "Dot backbones to ablate CS3 on.")


def main(argv: list[str]) -> None:
    backbones = flags.FLAGS.backbones
    flags.FLAGS.models = [label for b in backbones for label in (f"{b}+cas", f"{b}+cts", f"{b}+cms", f"cs3_{b}")]
    quality.run_configuration(argv, "cs3-ablation")


if __name__ == "__main__":
    app.run(main)
