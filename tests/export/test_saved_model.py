"""Exported SavedModels: layout, raw-feature signatures, fresh-process loading, ScaNN vs stock ops."""

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.evaluation import represent, top_k_with_exclusions
from tfcs3.export import export_model, next_version, raw_requests
from tfcs3.models import build_model
from tfcs3.training import train

K = 10


@pytest.fixture(scope="module")
def trained(synthetic_retrieval):
    model = build_model("youtubednn", synthetic_retrieval, embedding_dim=16, hidden_units=[32])
    train(model, synthetic_retrieval, epochs=3, batch_size=128, learning_rate=1e-2, verbose=0)
    return model, synthetic_retrieval


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    model, data = trained
    root = tmp_path_factory.mktemp("exports")
    return {
        "brute_force": export_model(model, data, root, "yt", index="brute_force", k=K),
        "scann": export_model(model, data, root, "yt_scann", index="scann", k=K),
        "root": root,
    }


def _requests(data, n=6):
    """Raw-feature requests for the first n test users, plus an unknown user with no history."""
    raw = raw_requests(data, ["user_id", "segment", "history"], "test", rows=range(n))
    raw["user_id"].append("no-such-user")
    raw["segment"].append("never-seen")
    raw["history"].append([""] * len(raw["history"][0]))
    raw["exclude"].append([""] * len(raw["exclude"][0]))
    return raw


def _expected_top_k(model, data, n=6):
    """Top-k from the in-process model with the evaluation code's exclusion rule."""
    q = represent(model.query_model, harness.head(data.test, n))
    c = represent(model.candidate_model, data.catalog)
    scores = model.score(q, c).numpy()
    out = []
    for k in range(n):
        earlier = data.test.exclusions(k)
        rows = top_k_with_exclusions(scores[k], earlier, K)
        out.append((list(data.catalog_ids[rows]), scores[k, rows]))
    return out


def test_tf_serving_layout(exports):
    base = exports["root"] / "yt"
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    version = base / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    assert tf.saved_model.contains_saved_model(str(version))
    extras = version / "assets.extra"
    assert np.load(extras / "item_embeddings.npy").shape[1] == 16
    meta = json.loads((extras / "tfcs3_export.json").read_text())
    assert meta["index"] == "brute_force" and meta["needs_scann_ops"] is False


def test_versions_are_never_overwritten_and_writes_are_atomic(trained, tmp_path, monkeypatch):
    model, data = trained
    assert export_model(model, data, tmp_path, "m").name == "1"
    assert export_model(model, data, tmp_path, "m").name == "2"
    assert next_version(tmp_path / "m") == 3
    with pytest.raises(FileExistsError):
        export_model(model, data, tmp_path, "m", version=1)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(model, data, tmp_path, "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]  # no partial version, no temp dir


def test_signatures_take_raw_features(exports, trained):
    model, data = trained
    loaded = tf.saved_model.load(str(exports["brute_force"]))
    assert set(loaded.signatures) == {"serving_default", "top_k", "query_embedding", "score_candidates"}
    _, inputs = loaded.signatures["serving_default"].structured_input_signature
    assert {n: s.dtype for n, s in inputs.items()} == {
        "user_id": tf.string, "segment": tf.string, "history": tf.string, "exclude": tf.string
    }  # fmt: skip
    raw = _requests(data)
    out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})
    expected = _expected_top_k(model, data)
    for k, (ids, scores) in enumerate(expected):
        assert [i.decode() for i in out["item_ids"].numpy()[k]] == ids
        np.testing.assert_allclose(out["scores"].numpy()[k], scores, rtol=1e-5, atol=1e-6)
    # The unknown user with an unknown segment and an empty history still gets k finite answers.
    assert np.isfinite(out["scores"].numpy()[-1]).all()


def test_unknown_exclusions_are_ignored(exports, trained):
    _, data = trained
    f = tf.saved_model.load(str(exports["brute_force"])).signatures["serving_default"]
    raw = _requests(data, n=2)
    plain = f(**{k: tf.constant(v) for k, v in raw.items()})
    raw["exclude"] = [row + ["not-an-item"] for row in raw["exclude"]]
    noisy = f(**{k: tf.constant(v) for k, v in raw.items()})
    np.testing.assert_array_equal(plain["item_ids"].numpy(), noisy["item_ids"].numpy())


def test_score_candidates_and_query_embedding(exports, trained):
    model, data = trained
    loaded = tf.saved_model.load(str(exports["brute_force"]))
    raw = _requests(data, n=3)
    query = {k: tf.constant(v) for k, v in raw.items() if k != "exclude"}
    emb = loaded.signatures["query_embedding"](**query)["embedding"].numpy()
    expected = represent(model.query_model, harness.head(data.test, 3)).numpy()
    np.testing.assert_allclose(emb[:3], expected, rtol=1e-5, atol=1e-6)
    cands = [[data.catalog_ids[0], data.catalog_ids[5], "unknown-item", ""]] * 4
    out = loaded.signatures["score_candidates"](**query, candidate_ids=tf.constant(cands))
    scores, known = out["scores"].numpy(), out["known"].numpy()
    c = represent(model.candidate_model, data.catalog).numpy()
    np.testing.assert_allclose(scores[:3, :2], expected @ c[[0, 5]].T, rtol=1e-5, atol=1e-6)
    # Ids outside the catalog are never scored as items: -inf, and flagged.
    assert (scores[:, 2:] == -np.inf).all() and known[:, :2].all() and not known[:, 2:].any()


def test_top_k_without_exclusions_needs_no_exclude_input(exports, trained):
    _, data = trained
    loaded = tf.saved_model.load(str(exports["brute_force"]))
    raw = _requests(data, n=3)
    query = {k: tf.constant(v) for k, v in raw.items() if k != "exclude"}
    plain = loaded.signatures["top_k"](**query)
    empty = loaded.signatures["serving_default"](**query, exclude=tf.constant([[""]] * len(raw["exclude"])))
    np.testing.assert_array_equal(plain["item_ids"].numpy(), empty["item_ids"].numpy())
    np.testing.assert_array_equal(plain["scores"].numpy(), empty["scores"].numpy())


def test_rows_past_the_last_unexcluded_item_are_padding(exports, trained):
    _, data = trained
    f = tf.saved_model.load(str(exports["brute_force"])).signatures["serving_default"]
    raw = _requests(data, n=2)
    keep = list(data.catalog_ids[:3].astype(str))
    everything_else = [i for i in data.catalog_ids.astype(str) if i not in keep]
    raw["exclude"] = [everything_else for _ in raw["exclude"]]
    out = f(**{k: tf.constant(v) for k, v in raw.items()})
    ids, scores = out["item_ids"].numpy().astype(str), out["scores"].numpy()
    for row_ids, row_scores in zip(ids, scores, strict=True):
        assert sorted(row_ids[:3]) == sorted(keep) and np.isfinite(row_scores[:3]).all()
        assert (row_ids[3:] == "").all() and (row_scores[3:] == -np.inf).all()


@pytest.mark.parametrize(
    "broken, named",
    [
        (lambda r: {**r, "exclude": r["exclude"][:1]}, "exclude"),
        (lambda r: {**r, "segment": r["segment"][:2]}, "segment"),
        (lambda r: {**r, "history": [h + [""] * 3000 for h in r["history"]]}, "history"),
        (lambda r: {**r, "user_id": ["x" * 600] + r["user_id"][1:]}, "user_id"),
    ],
)
def test_malformed_requests_are_refused_naming_the_input(exports, trained, broken, named):
    _, data = trained
    f = tf.saved_model.load(str(exports["brute_force"])).signatures["serving_default"]
    raw = broken(_requests(data, n=3))
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"input `{named}`"):
        f(**{k: tf.constant(v) for k, v in raw.items()})


def test_limits_are_set_at_export_and_recorded(trained, tmp_path):
    from tfcs3.export import ServingLimits

    model, data = trained
    with pytest.raises(ValueError, match="max_batch"):
        ServingLimits(max_batch=0)
    path = export_model(model, data, tmp_path, "m", k=K, warmup=False, limits=ServingLimits(max_batch=2))
    assert json.loads((path / "assets.extra" / "tfcs3_export.json").read_text())["limits"]["max_batch"] == 2
    f = tf.saved_model.load(str(path)).signatures["query_embedding"]
    query = {k: v for k, v in _requests(data, n=3).items() if k != "exclude"}
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch"):
        f(**{k: tf.constant(v) for k, v in query.items()})
    assert f(**{k: tf.constant(v[:2]) for k, v in query.items()})["embedding"].shape[0] == 2


def test_brute_force_export_serves_without_tfcs3_or_scann(exports, trained, serve_in_fresh_process):
    model, data = trained
    raw = _requests(data)
    result = serve_in_fresh_process(exports["brute_force"], "tfcs3,scann,tensorflow_recommenders", raw)
    for k, (ids, scores) in enumerate(_expected_top_k(model, data)):
        assert result["ids"][k] == ids
        np.testing.assert_allclose(result["scores"][k], scores, rtol=1e-5, atol=1e-6)


def test_scann_export_serves_with_scann_only(exports, trained, serve_in_fresh_process):
    model, data = trained
    raw = _requests(data)
    result = serve_in_fresh_process(exports["scann"], "tfcs3,tensorflow_recommenders", raw)
    expected = _expected_top_k(model, data)
    overlap = np.mean([len(set(result["ids"][k]) & set(ids)) / K for k, (ids, _) in enumerate(expected)])
    assert overlap >= 0.9


def _saved_model_cli(path: Path) -> str:
    cli = shutil.which("saved_model_cli", path=str(Path(sys.executable).parent)) or shutil.which("saved_model_cli")
    assert cli, "saved_model_cli not found"
    proc = subprocess.run([cli, "show", "--dir", str(path), "--all"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_only_the_scann_export_needs_scann_ops(exports):
    assert "Scann>" not in _saved_model_cli(exports["brute_force"])
    assert "Scann>" in _saved_model_cli(exports["scann"])


def test_predict_request_from_raw_features(exports, trained):
    from tensorflow_serving.apis import predict_pb2

    _, data = trained
    raw = _requests(data, n=2)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "yt"
    request.model_spec.signature_name = "serving_default"
    for name, values in raw.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array(values, dtype=object)))
    wire = request.SerializeToString()
    # What the server does with it: parse, decode each input, run the named signature.
    parsed = predict_pb2.PredictRequest.FromString(wire)
    loaded = tf.saved_model.load(str(exports["brute_force"]))
    signature = loaded.signatures[parsed.model_spec.signature_name]
    _, wanted = signature.structured_input_signature
    assert set(parsed.inputs) == set(wanted)
    out = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in parsed.inputs.items()})
    direct = signature(**{k: tf.constant(v) for k, v in raw.items()})
    np.testing.assert_array_equal(out["item_ids"].numpy(), direct["item_ids"].numpy())


def test_concurrent_calls_agree(exports, trained):
    _, data = trained
    loaded = tf.saved_model.load(str(exports["brute_force"]))
    f = loaded.signatures["serving_default"]
    raw = {k: tf.constant(v) for k, v in _requests(data).items()}
    reference = f(**raw)["item_ids"].numpy()
    results, errors = [], []

    def worker():
        try:
            for _ in range(5):
                results.append(f(**raw)["item_ids"].numpy())
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 30 and all((r == reference).all() for r in results)


def test_export_rejects_bad_arguments(trained, tmp_path):
    model, data = trained
    with pytest.raises(ValueError, match="index"):
        export_model(model, data, tmp_path, "m", index="faiss")
    with pytest.raises(ValueError, match="model_name"):
        export_model(model, data, tmp_path, "../evil")
    with pytest.raises(TypeError, match="towers"):
        export_model(build_model("popularity", data), data, tmp_path, "m")


@pytest.mark.parametrize("name", ["fit", "sparcode"])
def test_an_untrained_model_with_a_learned_scorer_exports(name, synthetic_retrieval, synthetic_preranking, tmp_path):
    # The scorer's own variables (FIT's LSS, SparCode's interaction network) are built lazily; the
    # export builds them before tracking them, so a never-run model exports and scores as in process.
    data = synthetic_preranking if name == "fit" else synthetic_retrieval
    model = build_model(name, data, embedding_dim=8, hidden_units=[16])
    loaded = tf.saved_model.load(str(export_model(model, data, tmp_path, name, k=5)))
    names = model.query_feature_names
    raw = raw_requests(data, names, "test", rows=range(3), exclude_earlier=False)
    rows = data.test.target[:3]
    candidates = [[str(data.catalog_ids[r])] for r in rows]
    served = loaded.signatures["score_candidates"](
        **{k: tf.constant(raw[k]) for k in names}, candidate_ids=tf.constant(candidates)
    )["scores"].numpy()[:, 0]
    q = represent(model.query_model, harness.head(data.test, 3))
    c = represent(model.candidate_model, {k: v[rows] for k, v in data.catalog.items()})
    np.testing.assert_allclose(served, np.diag(model.score(q, c).numpy()), rtol=1e-4, atol=1e-5)


def test_an_export_removes_what_killed_exports_left_behind(trained, tmp_path):
    import os
    import subprocess
    import sys
    import time

    model, data = trained
    base = tmp_path / "m"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = [base / f".tmp-export-{int(dead.stdout)}-x1", base / ".tmp-export-oldstyle"]
    live = base / f".tmp-export-{os.getpid()}-busy"  # an export still writing (this process)
    for path in [*left, live]:
        (path / "variables").mkdir(parents=True)
    old = time.time() - 7200
    os.utime(left[1], (old, old))
    assert export_model(model, data, tmp_path, "m").name == "1"
    assert sorted(p.name for p in base.iterdir()) == sorted(["1", live.name])


def test_warmup_requests_are_well_formed_and_every_one_succeeds(trained, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    model, data = trained
    path = export_model(model, data, tmp_path, "m")
    loaded = tf.saved_model.load(str(path))
    records = list(tf.data.TFRecordDataset(str(path / "assets.extra" / "tf_serving_warmup_requests")))
    assert len(records) == 8  # 4 signatures x batches 1 and 8
    seen = set()
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "m"
        signature = request.model_spec.signature_name
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        out = loaded.signatures[signature](**{name: tf.constant(value) for name, value in inputs.items()})
        batch = next(iter(inputs.values())).shape[0]
        assert all(v.shape[0] == batch for v in out.values())
        seen.add((signature, batch))
    assert {s for s, _ in seen} == {"serving_default", "top_k", "query_embedding", "score_candidates"}
    assert not (
        export_model(model, data, tmp_path, "m", warmup=False) / "assets.extra" / "tf_serving_warmup_requests"
    ).exists()
