"""An export killed at any point leaves no half-written version, and the next export cleans up."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from tfcs3.data import generate_synthetic, prepare
from tfcs3.export import export_model
from tfcs3.models import build_model

EXPORTER = textwrap.dedent(
    """
    import os, sys
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tfcs3
    from tfcs3.data import generate_synthetic, prepare
    from tfcs3.export import export_model
    from tfcs3.models import build_model

    data = prepare(generate_synthetic(num_users=80, num_items=50, seed=0), "retrieval", max_history=5)
    model = build_model("youtubednn", data, embedding_dim=4, hidden_units=[])
    print("ready", flush=True)
    while True:  # export after export until killed
        export_model(model, data, sys.argv[1], "m")
    """
)

#: Complete versions have every one of these.
PARTS = ("saved_model.pb", "variables/variables.index", "assets.extra/tfcs3_export.json", "assets.extra/item_ids.txt")


@pytest.mark.slow  # three exporter processes (about a minute); make test-all runs it
def test_exports_killed_at_random_points_leave_only_whole_versions(tmp_path):
    rng = random.Random(0)
    base = tmp_path / "m"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", EXPORTER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 4.0))  # somewhere in the second to fifth export
        assert proc.poll() is None, "the exporter died on its own"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    versions = sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert [int(p.name) for p in versions] == list(range(1, len(versions) + 1))
    for version in versions:  # whatever the kill interrupted never appears under a version number
        assert all((version / part).is_file() for part in PARTS), f"{version} is incomplete"
    if versions:
        assert "serving_default" in tf.saved_model.load(str(versions[-1])).signatures
    data = prepare(generate_synthetic(num_users=80, num_items=50, seed=0), "retrieval", max_history=5)
    model = build_model("youtubednn", data, embedding_dim=4, hidden_units=[])
    last = export_model(model, data, tmp_path, "m")
    assert int(last.name) == len(versions) + 1
    assert not [p.name for p in base.iterdir() if p.name.startswith(".")], "a killed export's folder was left"
