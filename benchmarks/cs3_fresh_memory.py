"""CS3 on SASRec: are its memories one interaction stale at test time?

The analysis behind CS3's result on SASRec (BENCHMARKS.md, "Every mechanism on the strongest
backbone"). Under the leave-last-two-out protocol the memories are rebuilt from the training
split alone, so at validation they hold everything before the target, but at test they miss the
validation interaction, which the test query's history does hold. If the memories help on
validation and hurt on test, this staleness is a candidate cause.

A configuration of ``benchmarks/quality.py`` (same protocol, settings and seeds as the CS3
ablation on SASRec). After each run, the trained model's test metrics are measured again three
ways, none of which selects anything (the run's reported metrics stay those of the model as
trained):

* ``as_trained``: the memories as training left them (the run's own test metrics);
* ``replayed_train``: the memories rebuilt from the training split by the final towers (separates
  the replay's timing from the staleness);
* ``replayed_train_validation``: rebuilt from the training and validation splits in time order, so
  at test they hold every interaction before the target, as the history does.

Example (the rows of BENCHMARKS.md):

    python benchmarks/cs3_fresh_memory.py --datasets=ml-100k --seeds=0,1,2 --models=sasrec+cts
"""

from __future__ import annotations

from typing import Any

import numpy as np  # noqa: E402
import quality  # noqa: E402
from absl import app  # noqa: E402

from tfcs3.data.prepared import PreparedData, Split  # noqa: E402
from tfcs3.evaluation.evaluate import evaluate  # noqa: E402


def train_and_validation(data: PreparedData) -> Split:
    """The training and validation rows as one stream in global time order."""
    parts = (data.train, data.validation)
    stamps = [p.timestamps for p in parts if p.timestamps is not None]
    if len(stamps) != len(parts):
        raise ValueError("the splits have no timestamps (prepared by an older tfcs3); clear the cache")
    both = Split(
        features={k: np.concatenate([p.features[k] for p in parts]) for k in parts[0].features},
        target=np.concatenate([p.target for p in parts]),
        users=np.concatenate([p.users for p in parts]),
        timestamps=np.concatenate(stamps),
    )
    return both.subset(both.time_order())


def memory_freshness(model: Any, data: PreparedData) -> dict[str, Any]:
    """Test metrics with the memories as trained, replayed from training, and replayed from
    training plus validation (see the module docstring)."""
    out = {"as_trained": evaluate(model, data, "test")}
    model.replay_memories(data.train.subset(data.train.time_order()))
    out["replayed_train"] = evaluate(model, data, "test")
    model.replay_memories(train_and_validation(data))
    out["replayed_train_validation"] = evaluate(model, data, "test")
    return {"memory_freshness": out}


def main(argv: list[str]) -> None:
    quality.run_configuration(argv, "sasrec-cs3-fresh-memory", {"cs3_sasrec": memory_freshness}, analysis=True)


if __name__ == "__main__":
    app.run(main)
