import os
import subprocess
import sys


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


def test_import_selects_keras_2():
    proc = _run(
        "import tfcs3, tensorflow as tf, tf_keras; assert tf.keras.layers.Layer is tf_keras.layers.Layer; print('ok')"
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_import_after_keras_3_explains_the_fix():
    proc = _run("import tensorflow as tf; tf.keras.version(); import tfcs3")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert "TF_USE_LEGACY_KERAS=1" in proc.stderr
