"""The request bodies the README shows (REST rows, gRPC columns) work on a MovieLens-100K export,
turned into tensors the way TF Serving turns them; a JSON number as an id is refused."""

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfcs3.data import load_prepared
from tfcs3.export import export_model
from tfcs3.models import build_model

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _rest_bodies() -> list[dict]:
    """The JSON bodies of the README's ``curl -d '...'`` requests."""
    return [json.loads(body) for body in re.findall(r"curl -X POST \S+ -d '(\{.*?\})'", README, flags=re.S)]


def _grpc_request() -> tuple[str, dict]:
    """The signature and the ``inputs`` dictionary of the README's gRPC example."""
    block = README[README.index("predict_pb2.PredictRequest()") :]
    signature = re.search(r'signature_name = "(\w+)", "(\w+)"', block).group(2)
    inputs = re.search(r"inputs = (\{.*?\})\n", block, flags=re.S).group(1)
    return signature, ast.literal_eval(inputs)


def _rows_to_columns(instances: list[dict]) -> dict[str, tf.Tensor]:
    """TF Serving's row format: each input stacked over the instances into one tensor."""
    return {name: tf.constant([instance[name] for instance in instances]) for name in instances[0]}


@pytest.fixture(scope="module")
def loaded(ml100k_dir, tmp_path_factory):
    data = load_prepared("ml-100k", "retrieval", str(ml100k_dir))
    model = build_model("youtubednn", data, embedding_dim=8)
    path = export_model(model, data, tmp_path_factory.mktemp("readme"), "youtubednn", k=10, warmup=False)
    return tf.saved_model.load(str(path)), set(data.catalog_ids.astype(str))


def test_the_readme_shows_the_requests():
    bodies = _rest_bodies()
    assert len(bodies) >= 2 and max(len(b["instances"]) for b in bodies) >= 2  # one instance, then several


@pytest.mark.parametrize("index", [0, 1])
def test_rest_bodies_are_answered(loaded, index):
    model, catalog = loaded
    body = _rest_bodies()[index]
    out = model.signatures[body["signature_name"]](**_rows_to_columns(body["instances"]))
    ids = out["item_ids"].numpy().astype(str)
    assert ids.shape == (len(body["instances"]), 10)
    for instance, row in zip(body["instances"], ids, strict=True):
        assert set(row) <= catalog and not set(row) & set(instance["exclude"])


def test_the_grpc_columns_are_answered(loaded):
    model, catalog = loaded
    signature, inputs = _grpc_request()
    out = model.signatures[signature](**{name: tf.constant(np.array(v, dtype=object)) for name, v in inputs.items()})
    assert set(out["item_ids"].numpy().astype(str)[0]) <= catalog


def test_a_json_number_as_an_id_is_refused_before_the_model_runs(loaded):
    model, _ = loaded
    body = _rest_bodies()[0]
    instances = [{**body["instances"][0], "user_id": 196}]
    # TF Serving's REST handler refuses it while parsing the JSON against the signature's dtypes;
    # in process, the signature's binding refuses the int tensor before any op runs.
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError), match="string"):
        model.signatures[body["signature_name"]](**_rows_to_columns(instances))
