"""Makes sure ``tf.keras`` resolves to Keras 2 (``tf_keras``) before TensorFlow loads.

TensorFlow Recommenders 0.7.7 only works with Keras 2. TensorFlow 2.16+ picks Keras 2 for
``tf.keras`` only when ``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is first imported.
"""

from __future__ import annotations

import os

_HOW_TO_FIX = (
    "tfcs3 needs tf.keras to be Keras 2 (the tf-keras package), because TensorFlow "
    "Recommenders requires it. Set the environment variable TF_USE_LEGACY_KERAS=1 before "
    "TensorFlow is imported (for example `export TF_USE_LEGACY_KERAS=1`, or "
    "`os.environ['TF_USE_LEGACY_KERAS'] = '1'` at the very top of your script, or simply "
    "`import tfcs3` before `import tensorflow`), then restart the Python process."
)


def quiet_tensorflow() -> None:
    """Hides TensorFlow's C++ start-up lines (CPU features, the CUDA probe on a machine without a
    GPU) unless the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves (``0`` shows everything); errors
    that matter still surface as Python exceptions. Takes effect only before TensorFlow loads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def ensure_legacy_keras() -> None:
    """Selects Keras 2 for ``tf.keras`` or raises ``ImportError`` saying how to fix it."""
    if os.environ.get("TF_USE_LEGACY_KERAS", "1") not in ("1", "true", "True"):
        raise ImportError(f"TF_USE_LEGACY_KERAS is set to {os.environ['TF_USE_LEGACY_KERAS']!r}. " + _HOW_TO_FIX)
    # TensorFlow reads the variable when tf.keras is first touched, so setting it works even after
    # `import tensorflow`, as long as nothing has used tf.keras yet.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    version_fn = getattr(tf.keras, "version", None)
    version = version_fn() if version_fn else "2"
    if not version.startswith("2"):
        raise ImportError(f"TensorFlow was already imported with Keras {version} as tf.keras. " + _HOW_TO_FIX)
