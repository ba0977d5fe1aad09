"""tfcs3's benchmarks: each module is a script (``python benchmarks/<name>.py --help``) whose results
go to ``benchmarks/results/<name>.json`` and, through ``report.py``, to BENCHMARKS.md.

The shared parts:

* ``quality.py``: the quality harness (grids, settings reused by mechanisms, seeds, early stopping,
  resumable runs); ``cs3_ablation.py``, ``cs3_fresh_memory.py``, ``fit.py``, ``sparcode.py`` and
  ``t2diff.py`` are configurations of it.
* ``exported.py``: a model exported and reloaded as TF Serving would, and its requests in batches;
  the latency scripts (``cs3_latency.py``, ``fit_latency.py``, ``t2diff_latency.py``,
  ``sparcode_latency.py``, ``frontier.py``) time those side by side and write their rows with
  ``serving.write_latency_result``.
* ``report.py``: the generated sections of BENCHMARKS.md, one function per section.

Run them from the repository root with tfcs3 installed (``pip install -e .``); the scripts import
their siblings by module name, as Python puts a script's folder first on its path.
"""
