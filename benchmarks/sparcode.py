"""SparCode benchmark: SparCode scored exactly and through its inverted index, the unrestricted
all-to-all scorer and the TFRS two-tower, on the retrieval protocol, through the shared harness.

A configuration of ``benchmarks/quality.py`` (same protocol, grid rule, seeds, result format).
SparCode reuses the YouTubeDNN two-tower's selected setting (its query encoder; the baseline result
files hold it) and tunes the sparsity bias b in {0, -1} on validation NDCG@10; ``all_to_all`` is the
same network on continuous tokens. After each SparCode run the inverted index is built from the
trained model (every code x every catalog item) and evaluated on the test split: untruncated
(identical to exact scoring, by construction; the row shows it on real data) and with each
posting list cut to its top T entries (``--top_t``), with the index density and memory. The
per-query latency of the index against two-tower + brute force / ScaNN is measured by
``benchmarks/sparcode_latency.py``.

Examples (the SparCode rows of BENCHMARKS.md):

    python benchmarks/sparcode.py --datasets=ml-100k --seeds=0,1,2
    python benchmarks/sparcode.py --datasets=ml-1m --seeds=0 --max_settings=1
"""

from __future__ import annotations

import time
from typing import Any

import quality  # noqa: E402
from absl import app, flags  # noqa: E402

from tfcs3.evaluation import represent  # noqa: E402
from tfcs3.evaluation.retrieval import KS, default_batch_size, metrics_from_ranks, target_ranks  # noqa: E402
from tfcs3.retrieval import SparseCodeIndex  # noqa: E402

flags.DEFINE_list("top_t", ["1000", "300", "100", "30"], "Posting-list caps evaluated besides the full index.")


def index_evaluation(model: Any, data: Any) -> dict[str, Any]:
    """Test metrics of the model's inverted index, untruncated and for each cap T."""
    part = data.test
    started = time.time()
    items = represent(model.candidate_model, data.catalog)
    full = SparseCodeIndex.from_model(model, items)
    build_seconds = time.time() - started
    queries = represent(model.query_model, part.features)
    out = []
    for top_t in [None, *(int(t) for t in flags.FLAGS.top_t)]:
        if top_t is not None and top_t >= data.num_items:
            continue
        index = full if top_t is None else full.truncated(top_t)
        ranks = target_ranks(
            lambda lo, hi, index=index: index.scores(queries[lo:hi]).numpy(),
            part.target,
            part.exclusion_indptr,
            part.exclusion_rows,
            batch_size=default_batch_size(data.num_items),
        )
        out.append(
            {
                "top_t": top_t,
                "test": metrics_from_ranks(ranks, KS),
                "nnz": index.nnz,
                "density": index.density,
                "memory_mb": index.memory_bytes / 2**20,
            }
        )
    return {"index": {"build_seconds": build_seconds, "codes": full.num_codes, "rows": out}}


def main(argv: list[str]) -> None:
    quality.run_configuration(argv, "sparcode", {"sparcode": index_evaluation}, models=["sparcode", "all_to_all"])


if __name__ == "__main__":
    app.run(main)
