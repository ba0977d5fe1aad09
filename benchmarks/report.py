"""Regenerates the result tables of BENCHMARKS.md from benchmarks/results/*.json.

Only the generated block between the markers is rewritten; the analysis around it is kept.
Run directly (``python benchmarks/report.py``) or let ``quality.py`` call it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"

COLUMNS = {
    "retrieval": ["recall@10", "ndcg@10", "mrr@10", "recall@50", "ndcg@50", "recall@100"],
    "preranking": ["auc", "gauc", "logloss"],
    "preranking_per_user": ["auc", "gauc", "logloss"],
    "user_split": ["recall@2", "recall@20", "mrr@2", "mrr@20", "ndcg@10"],
}


NO_RESULTS = "_No results yet._\n"


def result_files() -> list[Path]:
    """The result files whose runs the tables pool: every one but those of analyses, which rerun
    configurations measured elsewhere (``"analysis": true``, the harness's ``--analysis``; each
    has a section of its own)."""
    return [
        path for path in sorted(RESULTS_DIR.glob("*.json")) if not json.loads(path.read_text()).get("analysis", False)
    ]


class NoResults(Exception):
    """A section's result file is not there yet (the section then says so)."""


def _result(name: str) -> dict[str, Any]:
    """``benchmarks/results/<name>`` as JSON; :class:`NoResults` when that benchmark has not run."""
    path = RESULTS_DIR / name
    if not path.is_file():
        raise NoResults(name)
    return json.loads(path.read_text())


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def quality_tables() -> str:
    groups: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    commands: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in result_files():
        payload = json.loads(path.read_text())
        if "runs" not in payload:
            continue
        for run in payload["runs"]:
            if run.get("selected"):
                key = (run["dataset"], run["protocol"])
                groups[key][run["model"]].append(run)
                command = run.get("command", payload.get("command", "?"))
                commands[key].add(f"`{command}` → `{path.relative_to(ROOT)}`")
    out = []
    for (dataset, protocol), models in sorted(groups.items()):
        cols = COLUMNS[protocol]
        description = next(iter(models.values()))[0]["dataset_description"]
        out.append(f"### {dataset} — {protocol}\n")
        out.append(f"{description}. Test split; mean ± std over seeds (sample std).\n")
        out.append("| model | seeds | " + " | ".join(cols) + " | setting (chosen on validation) | train s/run |")
        out.append("|---|---|" + "---|" * len(cols) + "---|---|")
        ranked = sorted(models.items(), key=lambda kv: np.mean([r["test"][cols[1]] for r in kv[1]]))
        for model, runs in ranked:
            cells = [_cell([r["test"][c] for r in runs]) for c in cols]
            setting = json.dumps(runs[0]["setting"]) if runs[0]["setting"] else "—"
            seconds = np.mean([r["train_seconds"] or 0.0 for r in runs])
            out.append(f"| {model} | {len(runs)} | " + " | ".join(cells) + f" | `{setting}` | {seconds:.0f} |")
        out.append("\nProduced by: " + "; ".join(sorted(commands[(dataset, protocol)])) + "\n")
    return "\n".join(out)


def serving_tables() -> str:
    r = _result("serving.json")
    s = r["serving_default"]
    out = [
        f"Exported YouTubeDNN baseline (MovieLens-100K, {s['catalog_items']} items, brute-force index, "
        f"top-{s['k']}), `serving_default` on raw-feature requests, loaded with `tf.saved_model.load`:\n",
        "| batch | p50 ms | p99 ms | queries/s |",
        "|---|---|---|---|",
    ]
    for batch in (1, 64):
        b = s[f"batch_{batch}"]
        out.append(f"| {batch} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {b['queries_per_second']:.0f} |")
    out += [
        "\nScaNN vs brute force, top-100 by dot product. Catalogs drawn from a Gaussian fitted to the trained "
        "baseline's item embeddings (d = 64); queries are its real test-user query embeddings:\n",
        "| items | brute force q/s (batch 1) | ScaNN q/s (batch 1) | speed-up | brute force q/s (batch 64) "
        "| ScaNN q/s (batch 64) | speed-up | ScaNN recall@100 | ScaNN build s | ScaNN settings |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["indices"]:
        bf, sc = row["brute_force"], row["scann"]
        o = row["scann_options"]
        setting = (
            f"leaves {o['num_leaves']}/{o['num_leaves_to_search']}, AH {o['dimensions_per_block']}, "
            f"reorder {o['reorder']}"
        )
        out.append(
            f"| {row['items']:,} | {bf['qps_batch_1']:.0f} | {sc['qps_batch_1']:.0f} | {row['speedup_batch_1']:.1f}× "
            f"| {bf['qps_batch_64']:.0f} | {sc['qps_batch_64']:.0f} | {row['speedup_batch_64']:.1f}× "
            f"| {row['scann_recall_at_k']:.3f} | {sc['build_seconds']:.1f} | {setting} |"
        )
    if r.get("models"):
        out += [
            "\nPer-model latency of the exported SavedModel, one query (p50 / p99 ms): `score_candidates` over "
            f"{r['models'][0]['candidates']} candidates (pre-ranking) and `serving_default` (brute-force top-100 "
            "over the 1,682 MovieLens-100K items):\n",
            "| model | score terms per pair | score_candidates p50 | p99 | serving_default p50 | p99 |",
            "|---|---|---|---|---|---|",
        ]
        for m in r["models"]:
            sc, sd = m["score_candidates"], m["serving_default"]
            out.append(
                f"| {m['model']} | {m['score_width']} | {sc['p50_ms']:.2f} | {sc['p99_ms']:.2f} "
                f"| {sd['p50_ms']:.2f} | {sd['p99_ms']:.2f} |"
            )
    out.append(f"\nProduced by: `{r['command']}` → `benchmarks/results/serving.json` ({r['cpu_count']} CPUs)\n")
    return "\n".join(out)


CS3_STEPS = (("", "backbone"), ("+cas", "+CAS"), ("+cts", "+CTS"), ("+cms", "+CMS"), ("cs3_", "CS3 (all three)"))


def _selected_runs() -> dict[tuple[str, str, str], list[dict]]:
    runs: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for path in result_files():
        for run in json.loads(path.read_text()).get("runs", []):
            if run.get("selected"):
                runs[(run["model"], run["dataset"], run["protocol"])].append(run)
    return runs


def cs3_ablation_tables() -> str:
    """Per (dataset, protocol, backbone): backbone, +CAS, +CTS, +CMS, CS3 on the main metrics, with
    the change of the mean against the backbone."""
    runs = _selected_runs()
    main = {"retrieval": ["ndcg@10", "recall@10", "recall@50"], "preranking": COLUMNS["preranking"]}
    main["preranking_per_user"] = COLUMNS["preranking_per_user"]
    out = []

    def backbone_of(model: str) -> str | None:
        if model.startswith("cs3_"):
            return model[4:]
        return model.split("+")[0] if "+" in model else None

    # (a backbone stored under another label, SASRec's, has its ablation in strong_backbone_tables)
    cells = sorted({(d, p, b) for (m, d, p) in runs if (b := backbone_of(m)) and (b, d, p) in runs})
    for dataset, protocol, backbone in cells:
        out.append(f"#### {dataset} — {protocol} — {backbone} backbone\n")
        rows = tuple((f"cs3_{backbone}" if s == "cs3_" else f"{backbone}{s}", label) for s, label in CS3_STEPS)
        out += _comparison_table(runs, dataset, protocol, rows, main[protocol], backbone)
        out.append("")
    return "\n".join(out)


FIT_ROWS = (
    ("youtubednn", "YouTubeDNN two-tower (BCE), the baseline"),
    ("inttower_youtubednn", "IntTower (YouTubeDNN features), for reference"),
    ("fit-no_mqm", "FIT without MQM"),
    ("fit-no_lss", "FIT without LSS"),
    ("fit", "FIT (MQM + LSS)"),
)


def _comparison_table(
    runs: dict[tuple[str, str, str], list[dict]],
    dataset: str,
    protocol: str,
    rows: tuple[tuple[str, str], ...],
    cols: list[str],
    baseline: str,
) -> list[str]:
    """Markdown rows: one per (model, label) present, test mean ± std over seeds, the change of the
    first column's mean against ``baseline`` (absolute and relative), and the setting."""
    out = ["| model | seeds | " + " | ".join(cols) + f" | Δ {cols[0]} vs {baseline} | setting |"]
    out.append("|---|---|" + "---|" * len(cols) + "---|---|")
    base = runs.get((baseline, dataset, protocol), [])
    base_mean = np.mean([r["test"][cols[0]] for r in base]) if base else None
    for name, label in rows:
        rs = runs.get((name, dataset, protocol), [])
        if not rs:
            continue
        values = [_cell([r["test"][c] for r in rs]) for c in cols]
        mean = np.mean([r["test"][cols[0]] for r in rs])
        if base_mean is None or name == baseline:
            delta = "—"
        else:
            delta = f"{mean - base_mean:+.4f}" + (f" ({(mean / base_mean - 1) * 100:+.1f}%)" if base_mean else "")
        setting = json.dumps(rs[0]["setting"])
        out.append(f"| {label} | {len(rs)} | " + " | ".join(values) + f" | {delta} | `{setting}` |")
    return out


def fit_tables() -> str:
    """Per dataset (pre-ranking): the two-tower baseline, FIT and its ablations, AUC / GAUC /
    LogLoss with the change of the mean AUC against the baseline."""
    runs = _selected_runs()
    out = []
    for dataset in sorted({d for (m, d, p) in runs if m == "fit" and p == "preranking"}):
        out.append(f"#### {dataset} — pre-ranking\n")
        out += _comparison_table(runs, dataset, "preranking", FIT_ROWS, ["auc", "gauc", "logloss"], "youtubednn")
        out.append("")
    return "\n".join(out)


def fit_latency_tables() -> str:
    r = _result("fit-latency.json")
    out = [
        f"{r['dataset']} pre-ranking spec, exported `score_candidates`, one request of {r['candidates']} "
        f"candidates per call, p50 / p99 ms (median over {r['rounds']} interleaved rounds, {r['cpu_count']} "
        "cores), ratio of p50 to the two-tower:\n",
        "| variant | p50 ms | p99 ms | × two-tower |",
        "|---|---|---|---|",
    ]
    for row in r["rows"]:
        out.append(
            f"| {row['variant']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['ratio_to_two_tower']:.2f} |"
        )
    out.append(f"\nProduced by: `{r['command']}` → `benchmarks/results/fit-latency.json`\n")
    return "\n".join(out)


SPARCODE_PLOT = RESULTS_DIR / "sparcode-sweep.png"


def sparcode_tables() -> str:
    """Per dataset (retrieval): two-tower, all-to-all, SparCode exact and through its index; the
    top-T sweep of the seed-0 SparCode run (with a plot); the latency measurement."""
    runs = _selected_runs()
    cols = ["recall@10", "ndcg@10", "recall@50", "ndcg@50"]
    out, sweeps = [], {}
    for dataset in sorted({d for (m, d, p) in runs if m == "sparcode" and p == "retrieval"}):
        out.append(f"#### {dataset} — retrieval\n")
        out.append("| model | seeds | " + " | ".join(cols) + " | epochs (best / run / cap) | setting |")
        out.append("|---|---|" + "---|" * len(cols) + "---|---|")
        rows = [
            ("YouTubeDNN two-tower (dot)", runs.get(("youtubednn", dataset, "retrieval"), []), None),
            ("all-to-all (continuous tokens, not indexable)", runs.get(("all_to_all", dataset, "retrieval"), []), None),
            ("SparCode, exact model scoring", runs.get(("sparcode", dataset, "retrieval"), []), None),
            ("SparCode, inverted index (untruncated)", runs.get(("sparcode", dataset, "retrieval"), []), "index"),
        ]
        for label, rs, source in rows:
            if source == "index":
                rs = [{**r, "test": r["index"]["rows"][0]["test"]} for r in rs if "index" in r]
            if not rs:
                continue
            values = [_cell([r["test"][c] for r in rs]) for c in cols]
            epochs = ", ".join(f"{r['best_epoch']} / {r['epochs_run']} / {r.get('max_epochs', 30)}" for r in rs)
            setting = json.dumps(rs[0]["setting"])
            out.append(f"| {label} | {len(rs)} | " + " | ".join(values) + f" | {epochs} | `{setting}` |")
        seed0 = [r for r in runs.get(("sparcode", dataset, "retrieval"), []) if r["seed"] == 0 and "index" in r]
        if seed0:
            index = seed0[0]["index"]
            sweeps[dataset] = index["rows"]
            out.append(
                f"\nTop-T sweep of the seed-0 SparCode index ({index['codes']} codes; built in "
                f"{index['build_seconds']:.0f} s; test split):\n"
            )
            out.append("| posting lists | nnz | density | memory MB | recall@10 | ndcg@10 | recall@50 |")
            out.append("|---|---|---|---|---|---|---|")
            for row in index["rows"]:
                name = "full" if row["top_t"] is None else f"top {row['top_t']}"
                t = row["test"]
                out.append(
                    f"| {name} | {row['nnz']:,} | {row['density']:.4f} | {row['memory_mb']:.1f} | "
                    f"{t['recall@10']:.4f} | {t['ndcg@10']:.4f} | {t['recall@50']:.4f} |"
                )
        out.append("")
    if sweeps:
        _plot_sweeps(sweeps)
        out.append(f"![NDCG@10 against index density](benchmarks/results/{SPARCODE_PLOT.name})\n")
    path = RESULTS_DIR / "sparcode-latency.json"
    if path.is_file():
        r = json.loads(path.read_text())
        out.append(
            f"Latency, {r['dataset']} ({r['num_items']} items), exported `serving_default` (raw features -> "
            f"top-100), batch 1, median p50 over {r['rounds']} interleaved rounds ({r['cpu_count']} cores); "
            f"the SparCode model here trained {r['epochs']} epochs (test NDCG@10 "
            f"{r['sparcode_test_ndcg@10']:.4f}):\n"
        )
        out.append("| variant | p50 ms | × two-tower + brute force | index density |")
        out.append("|---|---|---|---|")
        for row in r["rows"]:
            density = f"{row['density']:.4f}" if "density" in row else "—"
            out.append(
                f"| {row['variant']} | {row['p50_ms']:.3f} | {row['ratio_to_two_tower_brute_force']:.2f} | {density} |"
            )
        out.append(f"\nProduced by: `{r['command']}` → `benchmarks/results/sparcode-latency.json`\n")
    return "\n".join(out)


def _plot_sweeps(sweeps: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for dataset, rows in sorted(sweeps.items()):
        ax.plot([r["density"] for r in rows], [r["test"]["ndcg@10"] for r in rows], marker="o", label=dataset)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("index density (stored / all code x item scores)")
    ax.set_ylabel("test NDCG@10")
    ax.set_title("SparCode: accuracy against posting-list cap")
    ax.legend()
    fig.tight_layout()
    fig.savefig(SPARCODE_PLOT, dpi=120)
    plt.close(fig)


T2DIFF_ROWS = (
    ("youtubednn", "YouTubeDNN two-tower, the baseline"),
    ("t2diff-no_diffusion", "T2Diff without diffusion (mixed attention only)"),
    ("t2diff-no_drift", "T2Diff without drift preparation"),
    ("t2diff", "T2Diff"),
    ("t2diff-time_lag", "T2Diff with the time lag (history time-gap buckets)"),
)
# T2Diff's published ML-1M figures (as the T2Diff paper reports them): full ML-1M (6,040 users), the authors'
# preprocessing (no time sort), full softmax, best epoch picked on the test set.
T2DIFF_PAPER = {"recall@2": 0.07738, "recall@20": 0.27727, "mrr@2": 0.06076, "mrr@20": 0.08730}


def t2diff_tables() -> str:
    """Per dataset: the retrieval protocol (two-tower, T2Diff, its ablations) and T2Diff's own user
    split beside the paper's figures; then the query latency with T = 50 / 10."""
    runs = _selected_runs()
    out = []
    variants = {m for m, _ in T2DIFF_ROWS}
    for dataset in sorted({d for (m, d, p) in runs if m in variants and p == "retrieval"}):
        out.append(f"#### {dataset} — retrieval (leave-last-out)\n")
        cols = ["ndcg@10", "recall@10", "mrr@10", "recall@50"]
        out += _comparison_table(runs, dataset, "retrieval", T2DIFF_ROWS, cols, "youtubednn")
        out.append("")
    for dataset in sorted({d for (m, d, p) in runs if m in variants and p == "user_split"}):
        out.append(f"#### {dataset} — T2Diff's protocol (held-out users, one random target each)\n")
        cols = ["recall@20", "recall@2", "mrr@2", "mrr@20", "ndcg@10"]
        out += _comparison_table(runs, dataset, "user_split", T2DIFF_ROWS, cols, "youtubednn")
        paper = " | ".join(f"{T2DIFF_PAPER[c]:.4f}" if c in T2DIFF_PAPER else "—" for c in cols)
        out.append(f"| T2Diff as published (full ML-1M, test-selected; not comparable) | — | {paper} | — | — |")
        out.append("")
    path = RESULTS_DIR / "t2diff-latency.json"
    if path.is_file():
        r = json.loads(path.read_text())
        names = [k for k in r["rows"][0] if k not in ("variant", "model", "hparams")]
        out.append(
            f"Query latency on the {r['dataset']} spec (untrained weights; exported with the brute-force index), "
            f"p50 ms (median over {r['rounds']} interleaved rounds, {r['cpu_count']} cores) and ratio to the "
            "two-tower:\n"
        )
        out.append("| variant | " + " | ".join(f"{n} p50 (×)" for n in names) + " |")
        out.append("|---|" + "---|" * len(names))
        for row in r["rows"]:
            cells = [f"{row[n]['p50_ms']:.2f} ({row[n]['ratio_to_two_tower']:.2f}×)" for n in names]
            out.append(f"| {row['variant']} | " + " | ".join(cells) + " |")
        out.append(f"\nProduced by: `{r['command']}` → `benchmarks/results/t2diff-latency.json`\n")
    out += t2diff_steps_table()
    return "\n".join(out)


T2DIFF_STEPS_PLOT = RESULTS_DIR / "t2diff-steps.png"


def _steps_latency() -> dict[int, dict[str, float]]:
    """p50 ms per reverse-step count (query_embedding, batch 1 and 64) from t2diff-latency.json."""
    path = RESULTS_DIR / "t2diff-latency.json"
    if not path.is_file():
        return {}
    latency: dict[int, dict[str, float]] = {}
    for row in json.loads(path.read_text())["rows"]:
        h = row["hparams"]
        if row["model"] != "t2diff" or not h.get("use_diffusion", True):
            continue
        steps = h.get("diffusion_serving_steps") or h.get("diffusion_steps", 50)
        latency[steps] = {n: row[n]["p50_ms"] for n in row if n.startswith("query_embedding")}
        latency[steps].update(
            {f"{n} ratio": row[n]["ratio_to_two_tower"] for n in row if n.startswith("query_embedding")}
        )
    return latency


def t2diff_steps_table() -> list[str]:
    """NDCG@10 against the reverse steps at inference (t2diff-steps.json) with each count's
    latency, and the plot."""
    path = RESULTS_DIR / "t2diff-steps.json"
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    by_steps: dict[int, list[dict]] = defaultdict(list)
    for run in r["runs"]:
        by_steps[run["steps"]].append(run)
    latency = _steps_latency()
    out = [
        f"#### T2Diff's reverse steps at inference ({r['dataset']}, retrieval; the same trained models, "
        f"DDPM chain of {r['chain_steps']} steps as trained, DDIM below it)\n",
        "| steps | sampler | seeds | validation NDCG@10 | test NDCG@10 | test Recall@10 | query batch 1 p50 ms (×) "
        "| query batch 64 p50 ms (×) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for steps in sorted(by_steps, reverse=True):
        runs = by_steps[steps]
        cells = [
            _cell([x[split][m] for x in runs])
            for split, m in (("validation", "ndcg@10"), ("test", "ndcg@10"), ("test", "recall@10"))
        ]
        t = latency.get(steps, {})
        lat = [
            f"{t[n]:.2f} ({t[n + ' ratio']:.2f}×)" if n in t else "—"
            for n in ("query_embedding batch 1", "query_embedding batch 64")
        ]
        out.append(f"| {steps} | {runs[0]['sampler']} | {len(runs)} | " + " | ".join(cells + lat) + " |")
    out.append(
        f"\nRecommended on validation (fewest steps within one seed standard deviation of the chain's mean): "
        f"**{r.get('recommended_steps')}**. Produced by: `{r['command']}` → `benchmarks/results/t2diff-steps.json`; "
        "latency from `benchmarks/t2diff_latency.py` (untrained weights, exported, 2 cores). "
        "`T2DiffModel`'s default `diffusion_serving_steps` is this count; the T2Diff rows of the other "
        "tables were measured with the chain.\n"
    )
    _plot_steps(by_steps, latency)
    out.append(f"![NDCG@10 and latency against reverse steps](benchmarks/results/{T2DIFF_STEPS_PLOT.name})\n")
    return out


def _plot_steps(by_steps: dict[int, list[dict]], latency: dict[int, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(by_steps)
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for split, style in (("validation", "o--"), ("test", "o-")):
        values = [[x[split]["ndcg@10"] for x in by_steps[s]] for s in steps]
        spread = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
        ax.errorbar(steps, [np.mean(v) for v in values], yerr=spread, fmt=style, capsize=3, label=f"{split} NDCG@10")
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(s) for s in steps])
    ax.set_xlabel("reverse steps at inference (DDIM below the trained chain)")
    ax.set_ylabel("NDCG@10")
    ax.legend(loc="lower left", fontsize=8)
    timed = [s for s in steps if "query_embedding batch 1" in latency.get(s, {})]
    if timed:
        right = ax.twinx()
        right.plot(timed, [latency[s]["query_embedding batch 1"] for s in timed], "s:", color="grey")
        right.set_ylabel("query p50 ms, batch 1 (grey)")
    ax.set_title("T2Diff: accuracy and latency against reverse steps")
    fig.tight_layout()
    fig.savefig(T2DIFF_STEPS_PLOT, dpi=120)
    plt.close(fig)


def cs3_online_tables() -> str:
    payload = _result("cs3-online.json")
    groups: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run in payload["runs"]:
        groups[(run["dataset"], run["backbone"])][run["variant"]].append(run)
    out = []
    for (dataset, backbone), variants in sorted(groups.items()):
        out.append(f"#### {dataset} — online pre-ranking — {backbone} backbone (prequential, test period)\n")
        out.append("| variant | seeds | AUC | GAUC | LogLoss | s/run |")
        out.append("|---|---|---|---|---|---|")
        for label, runs in variants.items():
            cells = [_cell([r["metrics"]["test"][m] for r in runs]) for m in ("auc", "gauc", "logloss")]
            seconds = np.mean([r["seconds"] for r in runs])
            out.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + f" | {seconds:.0f} |")
        commands = sorted({r["command"] for runs in variants.values() for r in runs})
        out.append(
            "\nProduced by: " + "; ".join(f"`{c}`" for c in commands) + " → `benchmarks/results/cs3-online.json`\n"
        )
    return "\n".join(out)


def cs3_latency_tables() -> str:
    out = []
    for path in sorted(RESULTS_DIR.glob("cs3-latency-*.json")):
        r = json.loads(path.read_text())
        names = [k for k in r["rows"][0] if k != "variant"]
        out.append(
            f"Backbone `{r['backbone']}` on {r['dataset']} (setting `{json.dumps(r['setting'])}`), exported with "
            f"the brute-force index, p50 ms (median over {r['rounds']} interleaved rounds) and ratio to the backbone:\n"
        )
        out.append("| variant | " + " | ".join(f"{n} p50 (×)" for n in names) + " |")
        out.append("|---|" + "---|" * len(names))
        for row in r["rows"]:
            cells = [f"{row[n]['p50_ms']:.3f} ({row[n]['ratio_to_backbone']:.2f}×)" for n in names]
            out.append(f"| {row['variant']} | " + " | ".join(cells) + " |")
        out.append(f"\nProduced by: `{r['command']}` → `{path.relative_to(ROOT)}` ({r['cpu_count']} CPUs)\n")
    return "\n".join(out)


BACKBONES = (("youtubednn", "YouTubeDNN two-tower"), ("sasrec", "SASRec"), ("gru4rec", "GRU4Rec"))
LOSS_LABELS = (
    ("in_batch", "in-batch softmax + logQ"),
    ("sampled_softmax", "sampled softmax (256 uniform)"),
    ("mixed_softmax", "sampled (256 uniform) + in-batch"),
    ("full_softmax", "full softmax"),
)


def competitive_tables() -> str:
    """Per retrieval dataset: every backbone x loss that ran, test NDCG@10 / Recall@10 / Recall@50
    mean ± std over seeds, the change of NDCG@10 against the YouTubeDNN two-tower with in-batch
    softmax, the training time per epoch (validation included) and the best epoch."""
    runs = _selected_runs()
    out = []
    datasets = sorted({d for (m, d, p) in runs if p == "retrieval" and m.split("-")[0] in ("sasrec", "gru4rec")})
    cols = ["ndcg@10", "recall@10", "recall@50"]
    for dataset in datasets:
        base = runs.get(("youtubednn", dataset, "retrieval"), [])
        base_mean = np.mean([r["test"]["ndcg@10"] for r in base]) if base else None
        out.append(f"#### {dataset} — backbones × losses\n")
        out.append(
            "| backbone | loss | seeds | "
            + " | ".join(cols)
            + " | Δ NDCG@10 vs YouTubeDNN in-batch | s/epoch | best epoch / run | setting |"
        )
        out.append("|---|---|---|" + "---|" * len(cols) + "---|---|---|---|")
        for backbone, name in BACKBONES:
            for loss, label in LOSS_LABELS:
                model = backbone if (backbone, loss) == ("youtubednn", "in_batch") else f"{backbone}-{loss}"
                rs = runs.get((model, dataset, "retrieval"), [])
                if not rs:
                    continue
                values = [_cell([r["test"][c] for r in rs]) for c in cols]
                mean = np.mean([r["test"]["ndcg@10"] for r in rs])
                delta = "—" if base_mean is None or model == "youtubednn" else f"{(mean / base_mean - 1) * 100:+.0f}%"
                per_epoch = np.mean([r["train_seconds"] / max(1, r["epochs_run"] or 1) for r in rs])
                epochs = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in rs)
                setting = json.dumps(rs[0]["setting"])
                out.append(
                    f"| {name} | {label} | {len(rs)} | "
                    + " | ".join(values)
                    + f" | {delta} | {per_epoch:.0f} | {epochs} | `{setting}` |"
                )
        out.append("")
    out += loss_timing_table()
    return "\n".join(out)


STRONG_BACKBONE = "sasrec-full_softmax"
STRONG_ROWS = (
    (STRONG_BACKBONE, "SASRec, full softmax: the backbone"),
    ("dat_sasrec", "DAT on SASRec"),
    ("dat_sasrec-no_losses", "DAT's vectors on SASRec, without its losses (control)"),
    ("sasrec-user_id", 'SASRec with the user id in its profile (profile="all")'),
    ("inttower_sasrec", "IntTower's CIR on SASRec"),
    ("sasrec+cas", "SASRec + CAS"),
    ("sasrec+cts", "SASRec + CTS"),
    ("sasrec+cms", "SASRec + CMS"),
    ("cs3_sasrec", "CS3 on SASRec (CAS + CTS + CMS)"),
    ("t2diff", "T2Diff, in-batch softmax (its own tower, for reference)"),
    ("t2diff-full_softmax", "T2Diff, full softmax"),
    ("gru4rec-full_softmax", "GRU4Rec, full softmax (for reference)"),
)


def strong_backbone_tables() -> str:
    """Per retrieval dataset where a mechanism ran on SASRec: the backbone, each mechanism on it
    and the references, test NDCG@10 / Recall@10 / Recall@50 with the change against the
    backbone, then the quality-latency table of ``frontier.py`` where it ran."""
    runs = _selected_runs()
    mechanisms = {"dat_sasrec", "inttower_sasrec", "sasrec+cas", "sasrec+cts", "sasrec+cms", "cs3_sasrec"}
    mechanisms.add("t2diff-full_softmax")
    out = []
    for dataset in sorted({d for (m, d, p) in runs if p == "retrieval" and m in mechanisms}):
        out.append(f"#### {dataset} — mechanisms on the strongest backbone\n")
        cols = ["ndcg@10", "recall@10", "recall@50"]
        out += _comparison_table(runs, dataset, "retrieval", STRONG_ROWS, cols, STRONG_BACKBONE)
        out.append("")
    out += frontier_tables()
    return "\n".join(out)


def frontier_tables() -> list[str]:
    """Per ``frontier-<dataset>.json``: each model's test NDCG@10 and query latency, and the plot."""
    out = []
    for path in sorted(RESULTS_DIR.glob("frontier-*.json")):
        r = json.loads(path.read_text())
        rows = sorted(r["rows"], key=lambda x: x["serving_default batch 1"]["p50_ms"])
        out.append(f"#### {r['dataset']} — NDCG@10 against query latency (batch 1, p50 ms)\n")
        out.append("| model | seeds | test NDCG@10 | serving_default (top-100) | query_embedding |")
        out.append("|---|---|---|---|---|")
        for row in rows:
            ndcg = f"{row['ndcg@10']:.4f}" + (f" ± {row['ndcg@10_std']:.4f}" if row["ndcg@10_std"] is not None else "")
            out.append(
                f"| {row['label']} | {row['seeds']} | {ndcg} | {row['serving_default batch 1']['p50_ms']:.2f} | "
                f"{row['query_embedding batch 1']['p50_ms']:.2f} |"
            )
        plot = path.with_suffix(".png")
        _plot_frontier(rows, r["dataset"], plot)
        out.append(f"\n![NDCG@10 against latency]({plot.relative_to(ROOT)})\n")
        out.append(f"Produced by: `{r['command']}` → `{path.relative_to(ROOT)}`\n")
    return out


def _plot_frontier(rows: list[dict[str, Any]], dataset: str, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    markers = "osD^vP*Xh<>p"
    lat = [row["serving_default batch 1"]["p50_ms"] for row in rows]
    for k, row in enumerate(rows):
        x, y = row["serving_default batch 1"]["p50_ms"], row["ndcg@10"]
        std = row["ndcg@10_std"] or 0.0
        ax.errorbar([x], [y], yerr=[std], fmt=markers[k % len(markers)], capsize=3, label=row["label"])
    ax.set_xscale("log")
    ticks = [t for t in (0.5, 1, 2, 3, 5, 10, 20, 50, 100, 200) if min(lat) / 1.5 <= t <= max(lat) * 1.5]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xlabel("query latency, serving_default top-100, batch 1 (p50 ms, log scale)")
    ax.set_ylabel("test NDCG@10 (mean ± std over seeds)")
    ax.set_title(f"{dataset}: quality against query latency, one point per model")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def loss_timing_table() -> list[str]:
    """Seconds per training epoch of each loss (benchmarks/loss_timing.py), per dataset."""
    out = []
    for path in sorted(RESULTS_DIR.glob("loss-timing-*.json")):
        r = json.loads(path.read_text())
        out += [
            f"#### {r['dataset']} — time per epoch by loss (idle machine, {r['cpu_count']} cores, median of "
            f"{r['rounds']} round(s))\n",
            "| backbone | loss | batch | train s/epoch | × in-batch | validation pass s "
            "| epoch + validation × in-batch |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in r["rows"]:
            ratio = row.get("train_ratio_vs_in_batch")
            both = row.get("epoch_with_validation_ratio_vs_in_batch")
            out.append(
                f"| {row['backbone']} | {row['loss']} | {row['batch_size']} | {row['train_epoch_s']:.1f} | "
                f"{'—' if ratio is None else f'{ratio:.2f}×'} | {row['validation_s']:.1f} | "
                f"{'—' if both is None else f'{both:.2f}×'} |"
            )
        out.append(f"\nProduced by: `{r['command']}` → `benchmarks/results/{path.name}`\n")
    return out


README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- readme-results:begin -->", "<!-- readme-results:end -->"
README_MODELS = {
    "popularity": "popularity",
    "dssm": "DSSM two-tower",
    "youtubednn": "YouTubeDNN two-tower",
    "dat": "DAT (DSSM backbone)",
    "dat_youtubednn": "DAT (YouTubeDNN backbone)",
    "inttower": "IntTower (DSSM features)",
    "inttower_youtubednn": "IntTower (YouTubeDNN features)",
    "cs3_dssm": "CS3 (DSSM backbone)",
    "cs3_youtubednn": "CS3 (YouTubeDNN backbone)",
    "all_to_all": "all-to-all scorer (SparCode's network, not indexable)",
    "sparcode": "SparCode (YouTubeDNN query encoder)",
    "t2diff-no_diffusion": "T2Diff without diffusion (mixed attention only)",
    "t2diff": "T2Diff (diffusion next intent + mixed attention)",
    "t2diff-time_lag": "T2Diff with the optional time lag",
    "youtubednn-full_softmax": "YouTubeDNN two-tower, full softmax",
    "youtubednn-sampled_softmax": "YouTubeDNN two-tower, sampled softmax",
    "gru4rec-in_batch": "GRU4Rec, in-batch softmax",
    "gru4rec-sampled_softmax": "GRU4Rec, sampled softmax",
    "gru4rec-full_softmax": "GRU4Rec, full softmax (its default)",
    "sasrec-in_batch": "SASRec, in-batch softmax",
    "sasrec-sampled_softmax": "SASRec, sampled softmax",
    "sasrec-full_softmax": "SASRec, full softmax (its default)",
    "dat_sasrec": "DAT on SASRec",
    "inttower_sasrec": "IntTower's CIR on SASRec",
    "cs3_sasrec": "CS3 on SASRec",
    "t2diff-full_softmax": "T2Diff, full softmax",
}


def readme_table(dataset: str = "ml-100k", protocol: str = "retrieval") -> str:
    """The README's short table: Recall@10 / NDCG@10 on ML-100K retrieval, with its commands."""
    runs: dict[str, list[dict]] = defaultdict(list)
    commands = set()
    for path in result_files():
        payload = json.loads(path.read_text())
        for run in payload.get("runs", []):
            if run.get("selected") and run["dataset"] == dataset and run["protocol"] == protocol:
                runs[run["model"]].append(run)
                commands.add(run.get("command", payload.get("command", "?")))
    lines = ["| model | Recall@10 | NDCG@10 | seeds |", "|---|---|---|---|"]
    for model, label in README_MODELS.items():
        if runs.get(model):
            cells = [_cell([r["test"][m] for r in runs[model]]) for m in ("recall@10", "ndcg@10")]
            lines.append(f"| {label} | {cells[0]} | {cells[1]} | {len(runs[model])} |")
    lines.append("\nProduced by:\n")
    lines += [f"    {c}" for c in sorted(commands)]
    return "\n".join(lines)


def _replace_block(begin: str, end: str, body: str, path: Path | None = None) -> None:
    path = path or BENCHMARKS_MD
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{body}\n{end}{tail}")


def write_sections(*names: str) -> None:
    """Regenerates the named sections of BENCHMARKS.md (every section without names). Section
    ``name`` lives between ``<!-- name:begin (generated by benchmarks/report.py) -->`` and
    ``<!-- name:end -->``; a section whose results are not there yet says so."""
    for name in names or tuple(SECTIONS):
        try:
            body = SECTIONS[name]()
        except NoResults:
            body = ""
        begin = f"<!-- {name}:begin (generated by benchmarks/report.py) -->"
        _replace_block(begin, f"<!-- {name}:end -->", body or NO_RESULTS)


def write_benchmarks_md() -> None:
    """The sections fed by ``benchmarks/quality.py``'s result files, and README's results table."""
    write_sections(*QUALITY_SECTIONS)
    if README.is_file() and README_BEGIN in README.read_text():
        _replace_block(README_BEGIN, README_END, readme_table(), README)


def soak_tables() -> str:
    r = _result("soak.json")
    row = r["rows"][0]
    refused = "—" if row["refused_p50_ms"] is None else f"{row['refused_p50_ms']:.2f} / {row['refused_p99_ms']:.2f}"
    track = ", ".join(f"{mib:.0f}" for _, mib in row["rss_track"])
    return "\n".join(
        [
            f"{row['requests']:,} requests from {row['threads']} threads to `serving_default` of a {r['dataset']} "
            f"export ({r['cpu_count']} cores), {row['malformed']:,} of them malformed:\n",
            "| valid | malformed | failures | valid p50 / p99 ms | refused p50 / p99 ms | RSS start → end MiB "
            "| growth per malformed request | requests/s |",
            "|---|---|---|---|---|---|---|---|",
            f"| {row['valid']:,} | {row['malformed']:,} | {row['failures']} | {row['valid_p50_ms']:.2f} / "
            f"{row['valid_p99_ms']:.2f} | {refused} | {row['rss_start_mib']:.0f} → {row['rss_end_mib']:.0f} | "
            f"{row['rss_growth_kib_per_malformed']:.3f} KiB | {row['requests_per_second']:.0f} |",
            f"\nRSS at each tenth of the run (MiB): {track}. A failure is a valid request not answered, a "
            "malformed one answered, or an error that does not name the input. Produced by: "
            f"`{r['command']}` → `benchmarks/results/soak.json`\n",
        ]
    )


def scale_tables() -> str:
    """Preparation, training and evaluation at 10^7 interactions (benchmarks/scale.py)."""
    r = _result("scale.json")
    syn, ref = r["synthetic"], r.get("ml-1m")
    gib = "{:.2f}".format

    def row(what: str, data: str, seconds: float, rss: float, note: str) -> str:
        return f"| {what} | {data} | {seconds:,.0f} | {gib(rss)} | {note} |"

    size = f"synthetic, {syn['interactions']:,} rows, {syn['users']:,} users, {syn['items']:,} items"
    prep, fit = syn["prepare"], syn["train"]
    rows = [
        "| step | data | seconds | peak RSS GiB | what |",
        "|---|---|---|---|---|",
        row("prepare (out of core, shards)", size, prep["seconds"], prep["peak_rss_gib"],
            f"{prep['rows']['train']:,} training rows, {prep['rows']['test']:,} test users"),
        row("train (stream from shards)", size, fit["train_seconds"], fit["peak_rss_training_gib"],
            f"**{fit['examples_per_second']:,.0f} examples/s** (batch {r['settings']['batch_size']}, "
            f"{r['settings']['train_steps']} steps, user table {fit['user_id_rows']:,} rows)"),
        row("evaluate (exact, full catalog)", size, fit["evaluation_seconds"], fit["peak_rss_gib"],
            f"{fit['test_users']:,} test users × {syn['items']:,} items; NDCG@10 {fit['test_ndcg@10']:.4f}"),
    ]  # fmt: skip
    hashed = r.get("synthetic_hashed_users")
    if hashed:
        hp, ht = hashed["prepare"], hashed["train"]
        buckets = f"same log, user ids hashed into {hashed['user_id_buckets']:,} rows"
        rows.append(row("prepare", buckets, hp["seconds"], hp["peak_rss_gib"], "user_id_buckets"))
        rows.append(
            row("train", buckets, ht["train_seconds"], ht["peak_rss_training_gib"],
                f"**{ht['examples_per_second']:,.0f} examples/s** (user table {ht['user_id_rows']:,} rows)")
        )  # fmt: skip
    if ref:
        name = "MovieLens-1M subset (in memory, registered loader)"
        rows.append(row("prepare", name, ref["prepare"]["seconds"], ref["prepare"]["peak_rss_gib"], "reference"))
        t = ref["train"]
        rows.append(
            row("train + evaluate", name, t["train_seconds"] + t["evaluation_seconds"], t["peak_rss_gib"],
                f"{t['examples_per_second']:,.0f} examples/s; evaluation {t['evaluation_seconds']:.1f} s")
        )  # fmt: skip
    out = "\n".join(rows)
    ml = r.get("ml-100k")
    if ml:
        out += (
            "\n\nMovieLens-100K, whole training epochs of YouTubeDNN (batch 512), interleaved over "
            f"{len(ml['seconds']['memory'])} rounds: in memory **{ml['memory_examples_per_second']:,.0f}** "
            f"examples/s, from shards **{ml['shards_examples_per_second']:,.0f}** (ratio "
            f"{ml['shards_over_memory']:.2f}; seconds per epoch: memory "
            f"{', '.join(f'{x:.2f}' for x in ml['seconds']['memory'])}, shards "
            f"{', '.join(f'{x:.2f}' for x in ml['seconds']['shards'])})."
        )
    out += (
        f"\n\nPeak RSS is each step's own process (`ru_maxrss`); {r['machine']['cpus']} cores. Produced by: "
        f"`{r['command'].strip()}` → `benchmarks/results/scale.json`\n"
    )
    return out


def brute_force_tables() -> str:
    """The exported brute-force search against a plain matmul (benchmarks/brute_force.py)."""
    r = _result("brute-force.json")
    settings = r["settings"]
    out = [
        f"d = {settings['dim']}, top-{settings['k']}, {settings['exclude']} excluded rows per query for `index`; "
        f"p50 ms (median over {settings['rounds']} interleaved rounds, {r['cpu_count']} cores), achieved "
        "multiply-adds per second and the share of the plain matmul's:\n",
        "| items | batch | call | p50 ms | GMAC/s | share of matmul |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        out.append(
            f"| {row['items']:,} | {row['batch']} | {row['call']} | {row['p50_ms']:.2f} | "
            f"{row['gmacs_per_second']:.1f} | {row['share_of_matmul']:.0%} |"
        )
    out.append(f"\nProduced by: `{r['command'].strip()}` → `benchmarks/results/brute-force.json`\n")
    return "\n".join(out)


def fresh_memory_table() -> str:
    """CS3 on SASRec: test NDCG@10 with the memories as trained, replayed from the training
    split, and replayed from training plus validation (benchmarks/cs3_fresh_memory.py)."""
    r = _result("sasrec-cs3-fresh-memory.json")
    out = [
        "| model | seed | setting | selected | validation | test, as trained | test, replayed from train "
        "| test, replayed from train + validation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        fresh = run["memory_freshness"]
        own = {k: v for k, v in run["setting"].items() if k not in ("learning_rate", "batch_size")}
        out.append(
            f"| {run['model']} | {run['seed']} | `{json.dumps(own)}` | {'yes' if run.get('selected') else 'no'} "
            f"| {run['validation']['ndcg@10']:.4f} | {fresh['as_trained']['ndcg@10']:.4f} "
            f"| {fresh['replayed_train']['ndcg@10']:.4f} | {fresh['replayed_train_validation']['ndcg@10']:.4f} |"
        )
    commands = sorted({run["command"] for run in r["runs"]})
    out.append("\nProduced by: " + "; ".join(f"`{c}`" for c in commands))
    out.append("→ `benchmarks/results/sasrec-cs3-fresh-memory.json` (NDCG@10)\n")
    return "\n".join(out)


#: Section name -> the function writing its body (the order of BENCHMARKS.md).
SECTIONS: dict[str, Callable[[], str]] = {
    "quality-tables": quality_tables,
    "cs3-ablation": cs3_ablation_tables,
    "fit": fit_tables,
    "sparcode": sparcode_tables,
    "t2diff": t2diff_tables,
    "competitive": competitive_tables,
    "strong-backbone": strong_backbone_tables,
    "cs3-fresh-memory": fresh_memory_table,
    "serving-tables": serving_tables,
    "cs3-latency": cs3_latency_tables,
    "cs3-online": cs3_online_tables,
    "fit-latency": fit_latency_tables,
    "soak": soak_tables,
    "scale": scale_tables,
    "brute-force": brute_force_tables,
}
#: The sections built from benchmarks/quality.py's result files.
QUALITY_SECTIONS = (
    "quality-tables", "cs3-ablation", "fit", "sparcode", "t2diff", "competitive", "strong-backbone", "cs3-fresh-memory",
)  # fmt: skip


if __name__ == "__main__":
    write_benchmarks_md()
    write_sections()
