"""Resumable training (tfcs3.resume): an interrupted run continues exactly where it stopped."""

import json

import numpy as np
import pytest
import tf_keras

from tfcs3.evaluation import evaluate
from tfcs3.models import build_model
from tfcs3.resume import restore, training_config
from tfcs3.training import train


def _weights_equal(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


class Interrupt(Exception):
    """Stands for a killed process."""


@pytest.mark.parametrize(  # CS3: memories, and a ranker trained apart (make test-all: the slowest test of the suite)
    "name", ["youtubednn", pytest.param("cs3_youtubednn", marks=pytest.mark.slow)]
)
def test_an_interrupted_run_resumes_after_its_last_finished_epoch(synthetic_retrieval, tmp_path, name):
    data = synthetic_retrieval
    resume = tmp_path / "resume"
    first = build_model(name, data, embedding_dim=16)
    at_kill = []

    class Kill(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                at_kill.append(self.model.get_weights())
                raise Interrupt

    original_fit = first.fit

    def fit_then_kill(*args, callbacks=(), **kwargs):  # train's own callbacks (the state writer) run first
        return original_fit(*args, callbacks=[*callbacks, Kill()], **kwargs)

    first.fit = fit_then_kill
    with pytest.raises(Interrupt):
        train(first, data, epochs=6, batch_size=128, seed=1, patience=10, verbose=0, resume_dir=resume)
    state = json.loads((resume / "state.json").read_text())
    assert state["epochs_done"] == 2 and len(state["history"]["loss"]) == 2

    # Model and optimizer come back exactly as they were at the end of epoch 2.
    second = build_model(name, data, embedding_dim=16)
    second.compile(optimizer=tf_keras.optimizers.Adam(3e-3))
    restore(resume, second, data, training_config(second, data, 128, 3e-3, 1, patience=10, validation_sample=None))
    assert _weights_equal(second.get_weights(), at_kill[0])
    assert len(second.optimizer.variables) == len(first.optimizer.variables)
    for a, b in zip(second.optimizer.variables, first.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    third = build_model(name, data, embedding_dim=16)
    fit = train(third, data, epochs=6, batch_size=128, seed=1, patience=10, verbose=0, resume_dir=resume)
    assert fit["resumed_at"] == [2] and fit["epochs_run"] == 6
    assert len(fit["history"]["val_ndcg@10"]) == 6
    assert fit["history"]["loss"][:2] == state["history"]["loss"]
    # The kept weights are the best epoch's, whether that epoch ran before or after the resume.
    best = int(np.argmax(fit["history"]["val_ndcg@10"]))
    assert fit["best_epoch"] == best + 1
    assert fit["best_validation"]["ndcg@10"] == pytest.approx(evaluate(third, data, "validation")["ndcg@10"])
    # Exact resume: the uninterrupted run of the same seed ends with the same history and weights.
    straight = build_model(name, data, embedding_dim=16)
    plain = train(straight, data, epochs=6, batch_size=128, seed=1, patience=10, verbose=0)
    assert plain["history"] == fit["history"]
    assert _weights_equal(straight.get_weights(), third.get_weights())

    # A finished run is not trained again; another configuration is refused.
    fourth = build_model(name, data, embedding_dim=16)
    again = train(fourth, data, epochs=6, batch_size=128, seed=1, patience=10, verbose=0, resume_dir=resume)
    assert again["history"] == fit["history"] and again["resumed_at"] == [2]
    assert _weights_equal(fourth.get_weights(), third.get_weights())
    other = build_model(name, data, embedding_dim=16)
    with pytest.raises(ValueError, match="another training run"):
        train(other, data, epochs=6, batch_size=64, seed=1, verbose=0, resume_dir=resume)
    with pytest.raises(ValueError, match="already 6 epochs long"):
        train(build_model(name, data, embedding_dim=16), data, epochs=4, batch_size=128, seed=1, patience=10,
              verbose=0, resume_dir=resume)  # fmt: skip
    # A run that reached its old maximum is extended by a larger one.
    longer = train(build_model(name, data, embedding_dim=16), data, epochs=7, batch_size=128, seed=1, patience=10,
                   verbose=0, resume_dir=resume)  # fmt: skip
    assert longer["resumed_at"] == [2, 6] and longer["epochs_run"] == 7
    assert longer["history"]["loss"][:6] == fit["history"]["loss"]


def test_leftovers_of_a_dead_attempt_are_not_taken_for_state(synthetic_retrieval, tmp_path):
    # A process killed after writing an epoch's files but before its state.json leaves them behind.
    data = synthetic_retrieval
    resume = tmp_path / "resume"
    (resume / "epoch-1").mkdir(parents=True)
    (resume / "epoch-1" / "training.index").write_bytes(b"torn")
    (resume / "best-1.npz").write_bytes(b"torn")
    (resume / "notes.txt").write_text("not ours")
    model = build_model("youtubednn", data, embedding_dim=16)
    train(model, data, epochs=1, batch_size=128, seed=1, verbose=0, resume_dir=resume)
    state = json.loads((resume / "state.json").read_text())
    assert state["best_weights"] == "best-1.npz" and (resume / "notes.txt").is_file()
    with np.load(resume / "best-1.npz") as saved:  # this run's best weights, not the torn file
        assert _weights_equal([saved[f"arr_{i}"] for i in range(len(saved.files))], model.get_weights())
    again = build_model("youtubednn", data, embedding_dim=16)
    train(again, data, epochs=1, batch_size=128, seed=1, verbose=0, resume_dir=resume)  # finished: restored
    assert _weights_equal(again.get_weights(), model.get_weights())
