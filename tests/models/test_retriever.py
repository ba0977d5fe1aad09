"""The Retriever contract: any two Keras towers evaluate and export like a tfcs3 model."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from tfcs3.data import make_dataset
from tfcs3.evaluation import evaluate
from tfcs3.export import export_model, raw_requests
from tfcs3.layers import MaskedMeanPooling
from tfcs3.models import Retriever, TowerRetriever, build_model


class _Embed(tf_keras.Model):
    """A plain tower over a dict of features: one embedding, plus the mean of a history's."""

    def __init__(self, key, vocab, history=None, history_vocab=0):
        super().__init__()
        self.key, self.history = key, history
        self.table = tf_keras.layers.Embedding(vocab, 8)
        if history:
            self.history_table = tf_keras.layers.Embedding(history_vocab, 8)
            self.pool = MaskedMeanPooling()  # an empty history pools to 0, not NaN

    def call(self, features):
        x = self.table(features[self.key])
        if self.history:
            ids = features[self.history]
            x += self.pool((self.history_table(ids), ids))
        return x


class _Tutorial(tfrs.Model):
    """TFRS's basic-retrieval model, on dicts of tfcs3's int features."""

    def __init__(self, user_model, item_model):
        super().__init__()
        self.user_model, self.item_model = user_model, item_model
        self.task = tfrs.tasks.Retrieval()

    def compute_loss(self, features, training=False):
        return self.task(self.user_model(features), self.item_model(features))


@pytest.fixture(scope="module")
def tutorial(synthetic_retrieval):
    data = synthetic_retrieval
    tf_keras.utils.set_random_seed(0)
    items = len(data.spec.feature("item_id").vocabulary)
    users = len(data.spec.feature("user_id").vocabulary)
    model = _Tutorial(_Embed("user_id", users, "history", items), _Embed("item_id", items))
    model.compile(tf_keras.optimizers.Adagrad(0.1))
    model.fit(make_dataset(data.train, 256), epochs=1, verbose=0)
    return model, TowerRetriever(model.user_model, model.item_model, ["user_id", "history"], ["item_id"])


def test_tower_names_are_checked():
    tower = tf_keras.Sequential([tf_keras.layers.Dense(2)])
    for bad in ([], "user_id", [1]):
        with pytest.raises(ValueError, match="query_features"):
            TowerRetriever(tower, tower, bad, ["item_id"])


def test_a_retriever_must_name_its_features():
    with pytest.raises(NotImplementedError, match="which features"):
        _ = Retriever().query_feature_names


def test_evaluate_refuses_a_model_without_the_contract(synthetic_retrieval, tutorial):
    model, _ = tutorial
    with pytest.raises(TypeError, match="TowerRetriever"):
        evaluate(model, synthetic_retrieval)


def test_plain_towers_are_refused_in_preranking_with_a_reason(synthetic_preranking, tutorial):
    _, retriever = tutorial
    with pytest.raises(TypeError, match="click logit"):
        evaluate(retriever, synthetic_preranking)


def test_a_wrapped_tfcs3_model_has_the_models_metrics(synthetic_retrieval):
    data = synthetic_retrieval
    model = build_model("youtubednn", data, embedding_dim=8, hidden_units=[])
    wrapped = TowerRetriever(
        model.query_model, model.candidate_model, model.query_feature_names, model.candidate_feature_names
    )
    assert evaluate(wrapped, data, "validation") == evaluate(model, data, "validation")


def test_full_catalog_metrics_of_plain_towers(synthetic_retrieval, tutorial):
    data = synthetic_retrieval
    model, retriever = tutorial
    part = data.validation
    scores = model.user_model({k: tf.constant(part.features[k]) for k in ("user_id", "history")}).numpy()
    scores = scores @ model.item_model({"item_id": tf.constant(data.catalog["item_id"])}).numpy().T
    for row in range(len(part)):  # the target against every item not excluded for this query
        scores[row, part.exclusion_rows[part.exclusion_indptr[row] : part.exclusion_indptr[row + 1]]] = -np.inf
    ranks = (scores > scores[np.arange(len(part)), part.target][:, None]).sum(axis=1)
    assert evaluate(retriever, data, "validation")["recall@10"] == pytest.approx(np.mean(ranks < 10))


def test_plain_towers_export_and_agree(synthetic_retrieval, tutorial, tmp_path):
    data = synthetic_retrieval
    model, retriever = tutorial
    path = export_model(retriever, data, tmp_path, "tutorial", k=5, warmup=False)
    loaded = tf.saved_model.load(str(path))
    raw = raw_requests(data, ["user_id", "history"], "test", rows=range(4))
    raw.pop("exclude")
    served = loaded.signatures["top_k"](**{k: tf.constant(v) for k, v in raw.items()})
    queries = model.user_model({k: tf.constant(data.test.features[k][:4]) for k in ("user_id", "history")})
    exact = tf.matmul(queries, retriever.represent_candidates(data.catalog), transpose_b=True).numpy()
    np.testing.assert_allclose(served["scores"].numpy(), -np.sort(-exact, axis=1)[:, :5], rtol=1e-5, atol=1e-5)


def test_a_retriever_without_hyperparameters_exports_an_empty_record(synthetic_retrieval, tutorial, tmp_path):
    import json

    model, _ = tutorial

    class Mine(Retriever):  # the contract alone: towers and feature names, no hparams
        query_model, candidate_model = model.user_model, model.item_model
        query_feature_names = ["user_id", "history"]
        candidate_feature_names = ["item_id"]

    path = export_model(Mine(), synthetic_retrieval, tmp_path, "mine", k=5, warmup=False)
    assert json.loads((path / "assets.extra" / "tfcs3_export.json").read_text())["hparams"] == {}
