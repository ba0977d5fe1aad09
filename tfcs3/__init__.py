"""tfcs3: enhanced two-tower recommendation on TensorFlow Recommenders.

Importing tfcs3 selects Keras 2 for ``tf.keras`` (``TF_USE_LEGACY_KERAS=1``), which TensorFlow
Recommenders needs. Import tfcs3 before TensorFlow, or set the variable yourself. It also hides
TensorFlow's C++ start-up lines (``TF_CPP_MIN_LOG_LEVEL=3`` unless you set it; ``0`` shows them).
"""

from tfcs3._keras_check import ensure_legacy_keras, quiet_tensorflow

quiet_tensorflow()
ensure_legacy_keras()

from tfcs3 import data, evaluation, export, layers, models, training  # noqa: E402

__version__ = "0.1.0"

__all__ = ["data", "evaluation", "export", "layers", "models", "training", "__version__"]
