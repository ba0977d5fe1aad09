"""Property-based fuzzing of exported signatures (hypothesis).

Each generated request mixes valid and hostile parts: known, unknown, empty, non-ASCII and
over-long ids; rows per input that agree or not; lists of any width, including past the limits.
For every request a signature must either answer well (no id outside the catalog, no NaN, no
duplicate, no excluded id; unknown candidates flagged and scored -inf) or refuse it with
``InvalidArgumentError`` whose message names an input. Anything else (another exception, a
crash, a bad answer) fails.

The default run is seeded and bounded (``FUZZ_EXAMPLES`` requests per signature, 250); set
``TFCS3_FUZZ_EXAMPLES`` for a longer one (``make fuzz``: 2,000 per signature).
"""

import os
import re

import harness
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tfcs3.export import ServingLimits, export_model
from tfcs3.models import build_model

FUZZ_EXAMPLES = int(os.environ.get("TFCS3_FUZZ_EXAMPLES", "250"))
LIMITS = ServingLimits(max_batch=8, max_list=40, max_candidates=30, max_string_bytes=24)
K = 10
MODELS = {
    # name: (registered model, protocol, hyperparameters, index)
    "two_tower": ("youtubednn", "retrieval", {"embedding_dim": 8, "hidden_units": [16]}, "brute_force"),
    "t2diff": (
        "t2diff",
        "retrieval",
        dict(embedding_dim=8, hidden_units=[16], diffusion_steps=5, session_length=5, ffn_units=8, attention_units=8),
        "brute_force",
    ),
    "fit": ("fit", "preranking", {"embedding_dim": 8, "hidden_units": [16], "num_meta": 2}, "brute_force"),
    "sparcode": ("sparcode", "retrieval", {"embedding_dim": 8, "hidden_units": [16]}, "sparse_code"),
}
SIGNATURES = ("serving_default", "top_k", "query_embedding", "score_candidates")
INPUT_NAMED = re.compile(r"input `[a-z_]+`")


@pytest.fixture(scope="module", params=sorted(MODELS))
def served(request, synthetic_retrieval, synthetic_preranking, tmp_path_factory):
    name, protocol, hparams, index = MODELS[request.param]
    data = synthetic_retrieval if protocol == "retrieval" else synthetic_preranking
    model = build_model(name, data, **hparams)
    model(harness.features(data.train, 2))
    path = export_model(model, data, tmp_path_factory.mktemp(request.param), name, index=index, k=K, limits=LIMITS)
    loaded = tf.saved_model.load(str(path))
    inputs = {}
    for signature in SIGNATURES:
        _, spec = loaded.signatures[signature].structured_input_signature
        inputs[signature] = {key: len(value.shape) for key, value in spec.items()}
    return loaded, inputs, data


def _ids(data):
    """Strings a client might send: real ids of every input's vocabulary, and hostile ones."""
    real = st.sampled_from(sorted({*data.catalog_ids.astype(str).tolist()[:50], "1", "2", "3"}))
    hostile = st.sampled_from(["", " ", "x1", "99999999", "é", "\x00", "-1", "0", "NaN", "itém"])
    long = st.text(min_size=20, max_size=40)
    return st.one_of(real, real, hostile, long)


@st.composite
def requests(draw, inputs, data):
    ids = _ids(data)
    batch = draw(st.integers(0, LIMITS.max_batch + 2))
    request = {}
    for name, rank in inputs.items():
        rows = batch if draw(st.integers(0, 9)) else draw(st.integers(0, LIMITS.max_batch + 2))
        width = 1 if rank == 1 else draw(st.one_of(st.integers(1, 12), st.integers(1, LIMITS.max_list + 5)))
        # At most 16 drawn strings, repeated to fill the shape (long lists without a long draw).
        drawn = draw(st.lists(ids, min_size=min(rows * width, 16), max_size=min(rows * width, 16)))
        values = np.resize(np.asarray(drawn, dtype=object), rows * width) if drawn else np.empty(0, object)
        request[name] = values.reshape((rows,) if rank == 1 else (rows, width))
    return request


def _check_answer(signature, request, out, catalog):
    if signature == "query_embedding":
        assert np.isfinite(out["embedding"].numpy()).all()
        return
    if signature == "score_candidates":
        scores, known = out["scores"].numpy(), out["known"].numpy()
        expected_known = np.vectorize(lambda c: c in catalog, otypes=[bool])(request["candidate_ids"])
        np.testing.assert_array_equal(known, expected_known)
        assert np.isfinite(scores[known]).all() and (scores[~known] == -np.inf).all()
        return
    ids = out["item_ids"].numpy().astype(str)
    scores = out["scores"].numpy()
    assert not np.isnan(scores).any()
    for row, (row_ids, row_scores) in enumerate(zip(ids, scores, strict=True)):
        real = row_ids[row_ids != ""]
        assert set(real) <= catalog, "an id outside the catalog"
        assert len(set(real)) == len(real), "a duplicate id"
        if "exclude" in request:
            assert not set(real) & set(request["exclude"][row].tolist()), "an excluded id"
        assert (row_scores[row_ids == ""] == -np.inf).all() and np.isfinite(row_scores[row_ids != ""]).all()


@pytest.mark.parametrize("signature", SIGNATURES)
def test_fuzzed_requests_get_a_good_answer_or_an_error_naming_the_input(served, signature):
    loaded, inputs, data = served
    fn = loaded.signatures[signature]
    catalog = set(data.catalog_ids.astype(str).tolist())
    outcomes = {"answered": 0, "refused": 0}

    @seed(1234)
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests(inputs[signature], data))
    def check(request):
        tensors = {k: tf.constant(v, tf.string) for k, v in request.items()}
        try:
            out = fn(**tensors)
        except tf.errors.InvalidArgumentError as err:
            assert INPUT_NAMED.search(err.message), f"error without the input's name: {err.message[:300]}"
            outcomes["refused"] += 1
            return
        _check_answer(signature, request, out, catalog)
        outcomes["answered"] += 1

    check()
    assert outcomes["answered"] > 0 and outcomes["refused"] > 0  # both paths were exercised
