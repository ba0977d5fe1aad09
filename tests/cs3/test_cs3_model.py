"""CS3 on dot backbones: towers, memory updates (read before write, positives only for CTS),
stream-order training, frozen ranker, saving/restoring and export with the memories."""

import harness
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfcs3.cs3.model import CS3, CS3TwoTower, cs3_class
from tfcs3.cs3.replay import later_writes, leave_own_write_out
from tfcs3.evaluation import represent
from tfcs3.export import export_model, raw_requests
from tfcs3.layers import CycleAdaptiveDense
from tfcs3.models import build_model, load_model, save_model
from tfcs3.models.two_tower import TwoTowerModel
from tfcs3.training import train

SMALL = dict(embedding_dim=8, hidden_units=[16], ranker_hidden_units=[16, 8])


def _dense_layers(tower):
    return [layer for layer in tower.submodules if isinstance(layer, tf_keras.layers.Dense | CycleAdaptiveDense)]


@pytest.mark.parametrize("cas", ["both", "user", "none"])
def test_cas_placement(cas, synthetic_retrieval):
    model = build_model("cs3_youtubednn", synthetic_retrieval, cas=cas, cts=False, cms=False, **SMALL)
    model(harness.batch(synthetic_retrieval.train, slice(0, 4)))
    query_cas = all(isinstance(x, CycleAdaptiveDense) for x in _dense_layers(model.query_model))
    item_cas = all(isinstance(x, CycleAdaptiveDense) for x in _dense_layers(model.candidate_model))
    assert (query_cas, item_cas) == {"both": (True, True), "user": (True, False), "none": (False, False)}[cas]
    assert model.query_model.memories == {} and model.ranker is None and not model.has_memories


def test_memories_join_the_tower_inputs(synthetic_preranking):
    data = synthetic_preranking
    model = build_model("cs3_youtubednn", data, **SMALL)
    batch = harness.batch(data.train, slice(0, 4))
    model(batch)
    plain = build_model("youtubednn", data, embedding_dim=8, hidden_units=[16])
    plain(batch)
    # First dense kernel: the plain input width + CTS (d = 8) + CMS (d_r = 8).
    width = _dense_layers(model.query_model)[0].kernel.shape[0]
    assert width == _dense_layers(plain.query_model)[0].kernel.shape[0] + 8 + 8
    assert set(model.query_model.memories) == {"cross_tower", "cascade"}
    assert model.query_model.memories["cross_tower"].key == data.spec.user_id
    assert model.candidate_model.memories["cascade"].key == data.spec.item_id


def test_train_step_reads_before_it_writes_and_cts_takes_positives_only(synthetic_preranking):
    data = synthetic_preranking
    model = build_model("cs3_youtubednn", data, cas="none", **SMALL)
    model.compile(optimizer=tf_keras.optimizers.SGD(0.0))  # weights fixed: only the memories move
    model.update_in_step = True  # online learning: the step writes the batch after its loss
    rows = np.arange(64)
    batch = harness.batch(data.train, rows)
    q_before = model.query_model(batch).numpy()
    c_before = model.candidate_model(batch).numpy()
    h = model.ranker.penultimate(batch).numpy()
    model.train_step(batch)
    users, items = data.train.features["user_id"][rows], data.train.features["item_id"][rows]
    labels = data.train.labels[rows]

    def expected(ids, values, decay, mask):
        table = np.zeros((int(ids.max()) + 1, values.shape[1]), np.float32)
        for i, v, m in zip(ids, values, mask, strict=True):
            if m:
                table[i] = decay * table[i] + (1 - decay) * v
        return table

    memories = model.query_model.memories
    # CTS: the item-tower outputs of the positive rows, computed with the *old* (zero) memories.
    got = memories["cross_tower"].table.numpy()
    want = expected(users, c_before, 0.8, labels > 0)
    np.testing.assert_allclose(got[: len(want)], want, rtol=1e-5, atol=1e-6)
    negatives_only = set(users[labels == 0]) - set(users[labels > 0])
    assert all(not got[u].any() for u in negatives_only)
    # CMS: the ranker's activations of every row.
    want = expected(items, h, 0.8, np.ones(len(rows), bool))
    got = model.candidate_model.memories["cascade"].table.numpy()
    np.testing.assert_allclose(got[: len(want)], want, rtol=1e-5, atol=1e-6)
    want = expected(items, q_before, 0.8, labels > 0)
    got = model.candidate_model.memories["cross_tower"].table.numpy()
    np.testing.assert_allclose(got[: len(want)], want, rtol=1e-5, atol=1e-6)
    # The written memories now change the towers' outputs (they are real inputs).
    assert not np.allclose(model.query_model(batch).numpy(), q_before)


def test_training_replays_the_stream_and_freezes_the_ranker(synthetic_preranking):
    data = synthetic_preranking
    model = build_model("cs3_youtubednn", data, **SMALL)
    assert model.has_memories
    replays = []
    original = model.replay_memories
    model.replay_memories = lambda *a, **k: (replays.append(1), original(*a, **k))[1]
    result = train(model, data, epochs=2, batch_size=256, learning_rate=1e-2, patience=5, verbose=0)
    assert model.ranker_fitted.numpy() and model.ranker_report["validation_auc"] > 0.5
    assert result["epochs_run"] == 2 and len(replays) == 2  # at the start of every epoch
    ranker_weights = [w.numpy().copy() for w in model.ranker.weights]
    model.fit(tf.data.Dataset.from_tensors(harness.batch(data.train, slice(0, 128))), verbose=0)
    for before, after in zip(ranker_weights, model.ranker.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    # A second train() call reuses the fitted ranker.
    report = model.ranker_report
    model.before_training(data)
    assert model.ranker_report is report


@pytest.mark.parametrize("protocol", ["retrieval", "preranking"])
def test_replay_user_reads_come_from_earlier_batches_only(protocol, synthetic_retrieval, synthetic_preranking):
    """The user-side input a row gets equals the memory after the batches before its own."""
    data = synthetic_retrieval if protocol == "retrieval" else synthetic_preranking
    model = build_model("cs3_youtubednn", data, cas="none", **SMALL)
    model(harness.batch(data.train, slice(0, 2)))
    stream = data.train.subset(data.train.time_order())
    bs = 64
    inputs = model.replay_memories(stream, bs)
    final = model.candidate_model.memories["cascade"].table.numpy().copy()
    key = model.query_model.memory_input_key("cross_tower")
    assert not inputs[key][:bs].any()  # the first batch reads empty memories
    for k in (1, 3):
        model.replay_memories(stream.subset(np.arange(k * bs)), bs)
        table = model.query_model.memories["cross_tower"].table.numpy()
        rows = np.arange(k * bs, (k + 1) * bs)
        np.testing.assert_allclose(inputs[key][rows], table[stream.features["user_id"][rows]], rtol=1e-5, atol=1e-6)
    model.replay_memories(stream, bs)  # deterministic
    np.testing.assert_allclose(model.candidate_model.memories["cascade"].table.numpy(), final, atol=1e-6)


def test_later_writes_and_leave_own_write_out_arithmetic():
    ids = np.array([4, 2, 4, 4, 2, 7, 4])
    wrote = np.array([1, 1, 0, 1, 1, 1, 1], bool)
    np.testing.assert_array_equal(later_writes(ids, wrote), [2, 1, 0, 1, 0, 0, 0])
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 3))

    def ema_with(mask, vals=values):
        table = np.zeros((8, 3))
        for i, v, w in zip(ids, vals, mask, strict=True):
            if w:
                table[i] = 0.8 * table[i] + 0.2 * v
        return table

    def ema(vals):
        return ema_with(wrote, vals)

    loo = leave_own_write_out(ema(values), ids, values, wrote, 0.8)
    for r in np.flatnonzero(wrote):
        others = wrote.copy()
        others[r] = False  # as if row r had never written
        expected = ema_with(others)[ids[r]]
        np.testing.assert_allclose(loo[r], expected, atol=1e-12)
    np.testing.assert_allclose(loo[2], ema(values)[4])  # row 2 did not write


def test_replay_item_inputs_leave_the_row_itself_out(synthetic_preranking):
    """Flipping one positive row's label moves the naive final item memory by that row's write and
    leaves the row's leave-own-out input unchanged. (The memory reads are switched off in the towers
    here, so a label cannot also travel the diffuse second-order path: row -> its user's memory ->
    that user's later outputs -> other items' memories -> ... -> this item.)"""
    data = synthetic_preranking
    model = build_model("cs3_youtubednn", data, cas="none", cms=False, **SMALL)
    stream = data.train.subset(data.train.time_order())
    model(harness.batch(stream, slice(0, 2)))
    for tower in (model.query_model, model.candidate_model):
        for norm in tower.memory_norms.values():
            norm.gamma.assign(tf.zeros_like(norm.gamma))
    key = model.candidate_model.memory_input_key("cross_tower")
    positives = np.flatnonzero(stream.labels > 0)
    r = int(positives[len(positives) // 2])
    item = stream.features["item_id"][r]
    base = model.replay_memories(stream, 64)[key][r]
    naive = model.candidate_model.memories["cross_tower"].table.numpy()[item]
    stream.labels[r] = 0.0
    flipped = model.replay_memories(stream, 64)[key][r]
    naive_flipped = model.candidate_model.memories["cross_tower"].table.numpy()[item]
    assert np.abs(naive - naive_flipped).max() > 1e-4
    np.testing.assert_allclose(flipped, base, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(flipped, naive_flipped, rtol=1e-5, atol=1e-7)  # no own write left to remove


def test_time_order(synthetic_retrieval):
    split = synthetic_retrieval.train
    order = split.time_order()
    assert np.all(np.diff(split.timestamps[order]) >= 0)
    sub = split.subset(order[:5])
    np.testing.assert_array_equal(sub.features["item_id"], split.features["item_id"][order[:5]])


def test_save_and_load_restores_memories_and_ranker(synthetic_retrieval, tmp_path):
    data = synthetic_retrieval
    model = build_model("cs3_youtubednn", data, **SMALL)
    train(model, data, epochs=1, batch_size=128, verbose=0)
    assert np.abs(model.query_model.memories["cross_tower"].table.numpy()).sum() > 0
    save_model(model, tmp_path, "cs3_youtubednn", SMALL)
    loaded = load_model(tmp_path, data)
    for a, b in zip(model.memories(), loaded.memories(), strict=True):
        np.testing.assert_array_equal(a.table.numpy(), b.table.numpy())
    assert bool(loaded.ranker_fitted.numpy())
    batch = harness.batch(data.test, slice(0, 16))
    np.testing.assert_allclose(loaded.ranker.penultimate(batch), model.ranker.penultimate(batch), atol=1e-6)
    q = represent(model.query_model, harness.head(data.test, 16))
    q2 = represent(loaded.query_model, harness.head(data.test, 16))
    np.testing.assert_allclose(q, q2, rtol=1e-6, atol=1e-6)


def test_export_serves_the_model_scores_with_its_memories(synthetic_retrieval, tmp_path):
    data = synthetic_retrieval
    model = build_model("cs3_youtubednn", data, **SMALL)
    train(model, data, epochs=1, batch_size=128, verbose=0)
    path = export_model(model, data, tmp_path, "cs3", index="brute_force", k=5)
    loaded = tf.saved_model.load(str(path))
    names = ["user_id", "segment", "history"]
    raw = raw_requests(data, names, "test", rows=range(4))
    emb = loaded.signatures["query_embedding"](**{k: tf.constant(raw[k]) for k in names})["embedding"].numpy()
    q = represent(model.query_model, harness.head(data.test, 4)).numpy()
    np.testing.assert_allclose(emb, q, rtol=1e-5, atol=1e-6)
    out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})
    c = represent(model.candidate_model, data.catalog).numpy()
    for k in range(4):
        ids = [data.catalog_ids.tolist().index(i.decode()) for i in out["item_ids"].numpy()[k]]
        np.testing.assert_allclose(out["scores"].numpy()[k], q[k] @ c[ids].T, rtol=1e-5, atol=1e-5)


def test_plug_in_on_a_user_backbone_and_bad_arguments(synthetic_retrieval):
    spec = synthetic_retrieval.spec

    class MyTwoTower(TwoTowerModel):
        pass

    model = cs3_class(MyTwoTower)(spec, tower="dssm", cms=False, embedding_dim=8)
    assert type(model).__name__ == "CS3MyTwoTower" and model.has_memories
    assert isinstance(CS3(spec, "dssm", cms=False), CS3TwoTower)
    with pytest.raises(ValueError, match="backbone"):
        CS3(spec, "inttower")
    with pytest.raises(ValueError, match="cas"):
        CS3(spec, cas="item")
    with pytest.raises(ValueError, match="alpha"):
        CS3(spec, alpha=1.5)
    with pytest.raises(ValueError, match="dot-product backbone"):
        from tfcs3.models.inttower import IntTowerModel

        cs3_class(IntTowerModel)(spec, scorer="sum_max")


@pytest.mark.parametrize(
    "switches",
    [dict(cas="both"), dict(cas="user"), dict(cas="none", cms=False), dict(cas="none", cts=False), dict(cms=False)],
)
def test_every_variant_keeps_the_candidate_side_independent_of_query_inputs(switches, synthetic_preranking):
    data = synthetic_preranking
    model = build_model("cs3_youtubednn", data, **{**SMALL, **switches})
    model.update_in_step = True
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2))
    model.train_step(harness.batch(data.train, slice(0, 256)))  # memories and weights now hold data
    rows = slice(0, 64)
    batch = harness.batch(data.test, rows)
    other = dict(batch)
    for f in data.spec.query:  # any other query inputs
        other[f.name] = tf.random.shuffle(batch[f.name], seed=1)
    np.testing.assert_array_equal(model.candidate_model(batch).numpy(), model.candidate_model(other).numpy())
    assert not np.allclose(model.query_model(batch).numpy(), model.query_model(other).numpy())


def test_cs3_on_sasrec_positions_read_the_memories_of_the_row_they_predict(synthetic_retrieval):
    import dataclasses

    from tfcs3.data.dense import NEXT_ITEMS

    data = synthetic_retrieval
    model = build_model("cs3_sasrec", data, **SMALL)
    model(harness.batch(data.train, slice(0, 2)))
    encoder = model.query_model.encoder
    assert all(isinstance(x, CycleAdaptiveDense) for x in [*encoder.ffn_inner, *encoder.ffn_outer])
    stream = data.train.subset(data.train.time_order())
    inputs = model.replay_memories(stream, 64)
    windows = model.training_examples(dataclasses.replace(stream, features={**stream.features, **inputs}))
    # the stream row of each (user, item, last history item): what that training row read
    keys = zip(stream.users, stream.features["item_id"], stream.features["history"][:, -1], strict=True)
    row_of = {key: r for r, key in enumerate(keys)}
    following = windows.features[NEXT_ITEMS]
    checked = 0
    for key in inputs:
        values = windows.features[key]
        for w, t in np.argwhere(following):
            source = row_of[(windows.users[w], following[w, t], windows.features["history"][w, t])]
            np.testing.assert_allclose(values[w, t], inputs[key][source], atol=1e-6)
            checked += 1
    assert checked > 100
    # the replay's row queries: each row's window position (the query that position trains)
    queries = model._row_queries(stream, 64)
    tower = model.query_model
    window_inputs = {k: tf.constant(v) for k, v in windows.features.items() if k in tower.feature_names}
    h = tower.base_outputs(window_inputs).numpy()
    for w, t in np.argwhere(following)[:200]:
        source = row_of[(windows.users[w], following[w, t], windows.features["history"][w, t])]
        np.testing.assert_allclose(queries[source], h[w, t], atol=1e-5)
    # every training item of a position's user is a known positive (left out of its negatives)
    model.before_training(data)
    batch = harness.features(windows, 8)
    rows = tf.constant([0, 3, 7])
    known = model.position_known_items(batch, rows, batch[NEXT_ITEMS]).numpy()
    for r, row in enumerate([0, 3, 7]):
        user = windows.features["user_id"][row]
        assert set(data.train.features["item_id"][data.train.features["user_id"] == user]) <= set(known[r])
    # one memory read per window (the read of its last row) would carry the window's labels
    one_read = {**batch, key: tf.reduce_mean(batch[key], axis=1)}
    with pytest.raises(ValueError, match="one memory read per position"):
        model.compute_loss(one_read, training=True)
    plain = build_model("cs3_sasrec", data, cas="none", cms=False, **SMALL)
    assert not any(isinstance(x, CycleAdaptiveDense) for x in plain.query_model.submodules)
    with pytest.raises(ValueError, match="does not learn online"):
        model.start_online()


def test_cs3_on_sasrec_exports_its_memories(synthetic_retrieval, tmp_path):
    from harness import export_matches_model

    data = synthetic_retrieval
    model = build_model("cs3_sasrec", data, **SMALL)
    model(harness.batch(data.train, slice(0, 2)))
    model.replay_memories(data.train.subset(data.train.time_order()), 64)  # non-zero memories
    assert model.query_model.memories["cross_tower"].table.numpy().any()
    for tower in (model.query_model, model.candidate_model):  # as if trained: the reads count
        for projection in tower.side.projections:
            projection.kernel.assign(tf.random.normal(projection.kernel.shape, stddev=0.3))
    export_matches_model(model, data, tmp_path, "cs3_sasrec")
