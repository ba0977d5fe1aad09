"""Data-parallel training with ``tf.distribute``: the strategies tfcs3 trains under, global
negatives across replicas, and which process of a cluster writes files.

A strategy is picked by name (:func:`make_strategy`, the CLI's ``--strategy``):

* ``default``: one device, no strategy (what ``tf.distribute.get_strategy()`` returns).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over this machine's GPUs (its CPU without any).
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, one process per machine,
  the cluster read from the ``TF_CONFIG`` environment variable that TF's own launchers set
  (Kubeflow's TFJob, Vertex AI custom jobs).

``batch_size`` is always the global batch: each of the ``R`` replicas gets ``batch_size / R``
rows of every step. The retrieval losses are sums over rows and Keras sums the replicas'
gradients, so a step under a strategy computes the gradient of the loss of the global batch, with
negatives gathered from every replica (:func:`gather_from_replicas`) as one device would use them.

Example:
    >>> strategy = make_strategy("mirrored")
    >>> with strategy.scope():
    ...     model = tfcs3.models.build_model("youtubednn", data)
    >>> tfcs3.training.train(model, data, batch_size=1024, strategy=strategy)
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (one of :data:`STRATEGIES`).

    ``multi_worker`` needs ``TF_CONFIG`` (``{"cluster": {"worker": ["host:port", ...]},
    "task": {"type": "worker", "index": i}}``) and must be created before any other TensorFlow
    work in the process.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "strategy 'multi_worker' reads the cluster from the TF_CONFIG environment variable, which is not set "
                '(e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                '"task": {"type": "worker", "index": 0}}\'; see docs/scaling_out.md)'
            )
        _cluster()  # a malformed TF_CONFIG fails here, with its name
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "parameter_server":
        raise ValueError(
            "strategy 'parameter_server' is not supported yet (the embedding-heavy models need a sharded-table "
            f"training loop); use one of {STRATEGIES}"
        )
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def _cluster() -> tuple[dict[str, list[str]], str, int]:
    """The cluster, task type and task index of ``TF_CONFIG`` (one worker, index 0, without it)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}, "worker", 0
    try:
        config = json.loads(raw)
        task = config.get("task", {})
        return dict(config["cluster"]), str(task.get("type", "worker")), int(task.get("index", 0))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"TF_CONFIG must be JSON with a 'cluster' and a 'task' entry, got {raw!r} ({error})") from None


def is_chief() -> bool:
    """Whether this process writes the run's files (checkpoints, TensorBoard logs, exports):
    the ``chief`` task, or worker 0 of a cluster that has no chief, or a process without
    ``TF_CONFIG``."""
    cluster, task_type, index = _cluster()
    if task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and "chief" not in cluster


def replicas_in_sync() -> int:
    """How many replicas compute the current step (1 outside a strategy)."""
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def replica_share(value: tf.Tensor) -> tf.Tensor:
    """``value / R``: the part of a loss term that every replica adds in full (a regularization
    penalty on shared weights) which each replica contributes, so that the summed gradients
    count it once."""
    replicas = replicas_in_sync()
    return value if replicas == 1 else value / float(replicas)


def gather_from_replicas(tensors: Sequence[tf.Tensor]) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Every replica's ``tensors`` concatenated along axis 0 (replica order), and where this
    replica's rows start in them.

    The gather is differentiable: the gradient that reaches a replica's own rows is the sum of
    what every replica's loss sends them, so replica losses summed over the cluster give the
    gradient of one loss over the global rows. Outside a strategy (or on one replica) the
    tensors come back unchanged with offset 0.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(tensors), tf.constant(0, tf.int32)
    # One collective per tensor: a batch of them must sit on one kind of device (ints on the host).
    gathered = [context.all_gather(_placed(tensor), axis=0) for tensor in tensors]
    sizes = context.all_gather(_placed(tf.shape(tensors[0])[:1]), axis=0)
    offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    return gathered, offset


def _placed(tensor: tf.Tensor) -> tf.Tensor:
    """``tensor`` with a device: a collective sends to the device of its input, and a tensor
    traced in a multi-worker step (one device per worker, no device scope) has none."""
    if tensor.device:
        return tensor
    with tf.device(tf.distribute.get_strategy().extended.worker_devices[0]):
        return tf.identity(tensor)


def free_local_ports(n: int) -> list[int]:
    """``n`` TCP ports free on 127.0.0.1 now, for a cluster on one machine (a trial run, a test)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def local_tf_config(ports: Sequence[int], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` of a cluster of workers on 127.0.0.1 at ``ports``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
