"""A tower: feature embeddings followed by an MLP, as a Keras model over a feature dictionary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.cs3.cycle_adaptive import CycleAdaptiveMLP
from tfcs3.data.features import CATEGORICAL, NUM_RESERVED, OOV, PAD, SEQUENCE, Feature
from tfcs3.data.prepared import PreparedData
from tfcs3.layers import MLP, FeatureEmbedding
from tfcs3.layers.ema_memory import EMAMemory


def item_attribute_table(data: PreparedData) -> dict[str, np.ndarray]:
    """Every candidate feature of each item-vocabulary index, from the catalog.

    Row ``PAD`` is all padding; row ``OOV`` (items outside the training vocabulary) has the OOV id
    for categorical features and padding for multi-valued ones, as an unknown candidate does in
    the export. Used to embed history items with the candidate tower's tables (FIT, T2Diff).
    """
    spec = data.spec
    size = len(spec.item_vocabulary)
    vocab_index = data.catalog[spec.item_id]
    known = vocab_index >= NUM_RESERVED
    tables = {}
    for f in spec.candidate:
        values = data.catalog[f.name]
        table = np.zeros((size, *values.shape[1:]), np.int32)
        if f.kind == CATEGORICAL:
            table[OOV] = OOV
        table[vocab_index[known]] = values[known]
        tables[f.name] = table
    tables[spec.item_id] = np.arange(size, dtype=np.int32)
    tables[spec.item_id][PAD] = PAD
    return tables


def embed_items(embedding: FeatureEmbedding, attributes: Mapping[str, tf.Tensor], ids: tf.Tensor) -> tf.Tensor:
    """Item ids ``[...]`` embedded like candidates, ``[..., D]``: look up each item's candidate
    features in ``attributes`` (:func:`item_attribute_table`) and run the candidate tower's
    :class:`FeatureEmbedding` on them."""
    ids = tf.cast(ids, tf.int32)
    flat = tf.reshape(ids, [-1])
    embedded = embedding({name: tf.gather(table, flat) for name, table in attributes.items()})
    return tf.reshape(embedded, tf.concat([tf.shape(ids), tf.shape(embedded)[-1:]], axis=0))


def feature_configs(features: Sequence[Feature], item_vocab_size: int) -> list[dict[str, Any]]:
    """Embedding configs for :class:`FeatureEmbedding`.

    A sequence feature holds item ids, so its table has ``item_vocab_size`` rows. A feature aligned
    with a sequence (:attr:`Feature.aligned_with`) keeps that sequence's name under ``aligned_with``.
    """
    configs = []
    for f in features:
        config: dict[str, Any] = {"name": f.name, "kind": f.kind}
        config["input_dim"] = item_vocab_size if f.vocabulary is None else len(f.vocabulary)
        if f.aligned_with is not None:
            config["aligned_with"] = f.aligned_with
        configs.append(config)
    return configs


def memory_config(name: str, layer: type[EMAMemory], normalize: bool = True, **args: Any) -> dict[str, Any]:
    """One entry of a :class:`MemoryTower`'s ``memories``: memory ``name``, a layer of class
    ``layer`` (a registered :class:`~tfcs3.layers.EMAMemory` subclass) built with ``args``
    (``num_rows``, ``dim``, ``decay``, ``key``: one of the tower's features) when the tower is."""
    config = {"name": f"{name}_memory", **args}
    layer_config = {"class_name": tf_keras.utils.get_registered_name(layer), "config": config}
    return {"name": name, "layer": layer_config, "normalize": bool(normalize)}


class MemoryTower(tf_keras.Model):
    """Base of every tower that can own per-id memories whose reads join its input (CS3's, or any
    other per-id side input a model keeps).

    ``memories`` lists :func:`memory_config` entries: ``name``, ``layer`` (a serialized
    :class:`~tfcs3.layers.EMAMemory` whose ``key`` is the id feature that selects the row, one of
    ``feature_names``) and ``normalize`` (default true: a LayerNormalization of the read, so the
    memory's scale cannot feed back into the tower that writes it; a zero row reads as the norm's
    learned offset). The tower does not know which mechanism a memory serves; the model writes
    them. :meth:`memory_vectors` returns the reads of a batch.

    Args:
        feature_names: the input features the tower reads (what a serving request must hold).
        memories: memory configs, as above.
    """

    def __init__(self, feature_names: Sequence[str], memories: Sequence[Mapping[str, Any]] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.feature_names = list(feature_names)
        self.memories: dict[str, EMAMemory] = {}
        self.memory_norms: dict[str, tf_keras.layers.Layer] = {}
        for m in memories:
            memory = tf_keras.layers.deserialize(dict(m["layer"]))
            if not isinstance(memory, EMAMemory):
                raise ValueError(f"memory {m['name']!r}: {type(memory).__name__} is not an EMAMemory")
            if memory.key not in self.feature_names:
                raise ValueError(f"memory {m['name']!r}: key {memory.key!r} is not a feature of this tower")
            self.memories[m["name"]] = memory
            if m.get("normalize", True):
                self.memory_norms[m["name"]] = tf_keras.layers.LayerNormalization(name=f"{m['name']}_norm")

    def _memory_key(self, name: str) -> str:
        """The id feature that selects memory ``name``'s rows (always set for a tower's memories)."""
        key = self.memories[name].key
        assert key is not None
        return key

    def memory_input_key(self, name: str) -> str:
        """The input key that, when present, supplies memory ``name``'s vectors row by row (the
        causal reads of a replayed stream) instead of the table."""
        return f"{self.name}/{name}_memory"

    def normalized_memory_key(self, name: str) -> str:
        """The input key that, when present, supplies memory ``name``'s vectors already normalised
        (serving reads a table normalised once at export: one gather instead of gather + norm)."""
        return f"{self.name}/{name}_memory_normalized"

    def normalized_memory_table(self, name: str) -> tf.Tensor:
        """``norm(m)`` for every row of memory ``name``: what a read of each id returns."""
        table = tf.convert_to_tensor(self.memories[name].table)
        norm = self.memory_norms.get(name)
        return table if norm is None else norm(table)

    def serving_tables(self) -> dict[str, tuple[tf.Tensor, str]]:
        """Per-id inputs an export may precompute: ``{input key: (table, id feature)}``; serving
        feeds ``table[ids]`` under the key instead of computing it. Here every memory, normalised
        once (one gather per request instead of a gather plus a LayerNorm)."""
        return {
            self.normalized_memory_key(name): (self.normalized_memory_table(name), self._memory_key(name))
            for name in self.memories
        }

    def memory_vectors(self, inputs: Mapping[str, tf.Tensor]) -> list[tf.Tensor]:
        """The (stop-gradient) memory reads of a batch, in ``memories`` order: the normalised table
        rows of the key feature, or the values the batch supplies under
        :meth:`normalized_memory_key` (used as they are) or :meth:`memory_input_key` (normalised)."""
        out = []
        for name, memory in self.memories.items():
            key = self.memory_input_key(name)
            if self.normalized_memory_key(name) in inputs:
                out.append(tf.stop_gradient(inputs[self.normalized_memory_key(name)]))
                continue
            if key in inputs:
                vector = tf.stop_gradient(tf.cast(inputs[key], tf.float32))
            else:
                vector = memory(inputs[self._memory_key(name)])
            norm = self.memory_norms.get(name)
            if norm is not None:  # per position ([B, L, d], dense supervision): normalised row by row
                vector = tf.reshape(norm(tf.reshape(vector, [-1, memory.dim])), tf.shape(vector))
            out.append(vector)
        return out


class FeatureTower(MemoryTower):
    """Base of the feature towers: a :class:`FeatureEmbedding` over named features, optional
    per-id memories (:class:`MemoryTower`), plus the constructor arguments kept for
    ``get_config`` (``config`` holds the subclass's own arguments). :meth:`embed` returns
    ``[concat_f embed_f(x_f); norm_1(m_1[x_key]); ...]``, the input of the dense stack.
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        embeddings_regularizer: float = 0.0,
        *,
        config: dict[str, Any],
        memories: Sequence[Mapping[str, Any]] = (),
        **kwargs: Any,
    ):
        super().__init__([f["name"] for f in features], memories, **kwargs)
        self._config = dict(
            features=[dict(f) for f in features],
            embedding_dim=embedding_dim,
            embeddings_regularizer=embeddings_regularizer,
            memories=[dict(m) for m in memories],
            **config,
        )
        self.embedding = FeatureEmbedding(features, embedding_dim, embeddings_regularizer)

    def embed(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Feature embeddings followed by the memory reads, ``[batch, width]``."""
        return tf.concat([self.embedding(inputs), *self.memory_vectors(inputs)], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class Tower(FeatureTower):
    """``y = MLP(concat_f embed_f(x_f))``: maps one side's feature dictionary to a vector.

    Args:
        features: :class:`FeatureEmbedding` configs (name, kind, input_dim).
        embedding_dim: width of each feature embedding.
        hidden_units: hidden widths of the MLP.
        output_dim: width of the tower output.
        dropout: dropout after hidden layers.
        l2_normalize: L2-normalise the output.
        embeddings_regularizer: L2 strength on embedding tables.
        cycles: 0 for plain dense layers; ``>= 1`` makes every dense layer a Cycle-Adaptive
            block with that many cycles (:class:`~tfcs3.layers.CycleAdaptiveMLP`, CS3's CAS).
        memories: per-id memories joined to the input (see :class:`FeatureTower`).
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        hidden_units: Sequence[int],
        output_dim: int,
        dropout: float = 0.0,
        l2_normalize: bool = False,
        embeddings_regularizer: float = 0.0,
        cycles: int = 0,
        **kwargs: Any,
    ):
        config = dict(
            hidden_units=list(hidden_units),
            output_dim=output_dim,
            dropout=dropout,
            l2_normalize=l2_normalize,
            cycles=cycles,
        )
        super().__init__(features, embedding_dim, embeddings_regularizer, config=config, **kwargs)
        if cycles:
            self.mlp = CycleAdaptiveMLP(hidden_units, output_dim, dropout, l2_normalize, cycles=cycles)
        else:
            self.mlp = MLP(hidden_units, output_dim, dropout, l2_normalize)

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return self.mlp(self.embed(inputs), training=training)


class BehaviourTower(FeatureTower):
    """Base of the user towers that read the history as item embeddings (FIT, T2Diff).

    The sequence feature (exactly one) is the history; the other features form the profile
    (:meth:`embed`). History items are embedded with the candidate tower's tables through
    ``item_attributes`` (:func:`item_attribute_table`, held as non-trainable variables, exported
    with the tower), so behaviours and candidates share one space. An export precomputes those
    embeddings for the whole vocabulary (:meth:`serving_tables`).

    Args:
        features: :class:`FeatureEmbedding` configs of the query side.
        embedding_dim, embeddings_regularizer: as for :class:`FeatureTower`.
        item_embedding: the candidate tower's :class:`FeatureEmbedding`.
        item_attributes: item-vocabulary index -> candidate feature ids.
        config: the subclass's own constructor arguments (for ``get_config``).
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        embeddings_regularizer: float,
        item_embedding: FeatureEmbedding | None,
        item_attributes: Mapping[str, np.ndarray] | None,
        *,
        config: dict[str, Any],
        **kwargs: Any,
    ):
        sequences = [f for f in features if f["kind"] == SEQUENCE]
        name = kwargs.get("name", type(self).__name__)
        if len(sequences) != 1:
            raise ValueError(f"{name} needs exactly one history (sequence) feature, got {len(sequences)}")
        if item_embedding is None or item_attributes is None:
            raise ValueError(f"{name} needs the candidate tower's item_embedding and item_attributes")
        profile = [f for f in features if f["kind"] != SEQUENCE]
        super().__init__(profile, embedding_dim, embeddings_regularizer, config=config, **kwargs)
        self.history_name = sequences[0]["name"]
        self.feature_names = [*self.feature_names, self.history_name]
        self.item_embedding = item_embedding
        self.item_attributes = {
            name: tf.Variable(table, trainable=False, name=f"item_{name}") for name, table in item_attributes.items()
        }

    @property
    def history_embedding_key(self) -> str:
        """The input key that, when present, supplies the history embeddings ``[B, L, D]`` (an
        export gathers them from :meth:`history_embedding_table`)."""
        return f"{self.name}/history_embeddings"

    def history_embedding_table(self) -> tf.Tensor:
        """``e(item)`` for every item-vocabulary index, ``[V, D]``."""
        return self.item_embedding(self.item_attributes)

    def serving_tables(self) -> dict[str, tuple[tf.Tensor, str]]:
        return {
            **super().serving_tables(),
            self.history_embedding_key: (self.history_embedding_table(), self.history_name),
        }

    def behaviour(self, inputs: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """``(e(x_1..x_L) [B, L, D], ids [B, L])``: history items embedded like candidates."""
        ids = tf.cast(inputs[self.history_name], tf.int32)
        if self.history_embedding_key in inputs:
            return tf.convert_to_tensor(inputs[self.history_embedding_key]), ids
        return embed_items(self.item_embedding, self.item_attributes, ids), ids
