"""Stage 8: RESULTS.md and its figures, from what the run wrote under exp/: per target domain the
selected configurations (learning rate chosen on dev, seeds), every sweep point, forgetting at
matched learning, SSVD-O's outer share, the error breakdown, and the versions that produced them."""

import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

import numpy as np

from ..budget import DEFAULT_METHODS
from ..fileio import atomic_write_text
from .data import test_sets
from .frontier import Sweep, matched_forgetting
from .plots import label, plot_frontier, plot_outer, plot_selected
from .results import at_edge, counts, finished, groups, read_wer, select, target_wer
from .settings import Settings, set_name

ORDER = {m: i for i, m in enumerate(DEFAULT_METHODS)}  # baselines first, as run.sh runs them
REFERENCE = "lora"  # the method matched forgetting is compared against


def fmt(w: dict | None) -> str:
    return "-" if w is None else f"{w['wer']:.1f} [{w['ci_low']:.1f}, {w['ci_high']:.1f}]"


def seconds(exp: Path) -> str:
    path = exp / "train_time"
    return f"{float(path.read_text()):.0f}" if path.exists() else "-"


def mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f} (n={len(values)})"


def pooled_counts(exp: Path, sets: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    wers = [read_wer(exp, name) for name in sets]
    if any(w is None for w in wers):
        return None
    parts = [counts(w) for w in wers]
    return np.concatenate([e for e, _ in parts]), np.concatenate([n for _, n in parts])


def versions() -> str:
    names = ("espnet", "torch", "peft", "espnet_ssvd")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    git = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    commit = git.stdout.strip() if git.returncode == 0 else "not a git checkout"
    return f"Versions: {', '.join(found)}; espnet_ssvd commit {commit}; Python {platform.python_version()} on {platform.machine()}."


def write_report(exp_root: Path, domains: dict[str, tuple[str, list[str]]], source_set: str, results: Path) -> None:
    """``domains``: each target domain's (dev set, test sets); ``source_set``: the forgetting set."""
    runs = finished(exp_root)
    source = exp_root / "source"
    base_src = read_wer(source, source_set)
    lines = ["# Results", "",
             "WER (%) with 95 % bootstrap confidence intervals over utterances. Forgetting is the change of",
             f"source-domain WER ({source_set}) against the source model. Each configuration's learning rate is the one",
             "of its grid with the lowest WER on the domain's dev set (never a test set); its test WERs are those of",
             "that run (seed 0), and with several seeds the mean ± standard deviation over seeds stands beside them.",
             f"Written by `espnet_ssvd.recipe.report` from {exp_root}/ of this run.", "", versions(), ""]
    name_file = source / "pretrained_name"
    if name_file.exists():
        lines += [f"Source model: {name_file.read_text().strip()} (pretrained); {source_set} WER {fmt(base_src)}.", ""]
    else:
        lines += [f"Source model: {source_set} WER {fmt(base_src)}; training time {seconds(source)} s.", ""]
    configs_all = groups(runs)
    # each configuration's learning-rate choice, made once for its table and the error breakdown
    selected = {k: select(exp_root, rs, domains[k[0]][0]) for k, rs in configs_all.items() if k[0] in domains}
    for domain, (dev, sets) in domains.items():
        configs = sorted(((k, v) for k, v in configs_all.items() if k[0] == domain),
                         key=lambda kv: (kv[0][1] == "full", ORDER.get(kv[0][1], len(ORDER)), kv[0][1],
                                         kv[1][0]["trainable"], kv[0][3] or 0))
        lines += domain_section(exp_root, domain, dev, sets, source_set, base_src, configs, selected, results.parent)
    lines += error_breakdown(exp_root, selected, domains, source_set)
    skipped_file = exp_root / "infeasible.json"
    skipped = json.loads(skipped_file.read_text()) if skipped_file.exists() else []
    if skipped:
        lines += ["## Not run: budget out of reach", ""]
        lines += [f"- {s['method']} at {s['budget']}: {s['why']}" for s in skipped] + [""]
    atomic_write_text(results, "\n".join(lines) + "\n")
    print(f"wrote {results}")


def domain_section(exp_root: Path, domain: str, dev: str, sets: list[str], source_set: str, base_src: dict | None,
                   configs: list[tuple[tuple, list[dict]]], selected: dict[tuple, dict | None],
                   out_dir: Path) -> list[str]:
    source = exp_root / "source"
    pooled = len(sets) > 1
    columns = (["target WER (all)"] if pooled else ["target WER"]) + (sets if pooled else [])
    zero = target_wer(source, sets)

    def wer_cells(exp: Path, tgt: dict | None) -> str:
        return " | ".join([fmt(tgt)] + ([fmt(read_wer(exp, name)) for name in sets] if pooled else []))

    lines = [f"## {domain}", "", f"Learning rate selected on {dev}; target test: {', '.join(sets)}.", "",
             f"| method | budget | settings | trainable params | lr (grid) | {' | '.join(columns)} | target over seeds "
             "| source WER | source over seeds | forgetting | train time (s) |",
             "|" + "---|" * (10 + len(columns)),
             f"| pretrained (zero-shot) | - | - | 0 | - | {wer_cells(source, zero)} | - | {fmt(base_src)} | - | 0.0 | - |"]
    sweep_lines, points, unselected, outer = [], [], [], []
    frontier: dict[str, list[tuple[float, float, float]]] = {}
    arrays: dict[str, dict[str, Sweep]] = {}
    zero_tgt, zero_src = pooled_counts(source, sets), pooled_counts(source, [source_set])
    for key, rs in configs:
        _, method, budget, fraction = key
        sweep = [r for r in rs if r["seed"] == 0]
        chosen = selected[key]
        name = f"{label(rs[0])} {budget}".strip()
        for r in sweep:
            exp = exp_root / r["name"]
            tgt, src = target_wer(exp, sets), read_wer(exp, source_set)
            forget = "-" if src is None or base_src is None else f"{src['wer'] - base_src['wer']:+.1f}"
            mark = " (selected)" if r is chosen else ""
            sweep_lines.append(f"| {name} | {r['lr']:g}{mark} | {fmt(read_wer(exp, dev))} | {fmt(tgt)} | {fmt(src)} "
                               f"| {forget} |")
        if chosen is None:
            unselected.append(name)
            continue
        grid = [r["lr"] for r in sweep]
        edge = ", at the grid's edge" if at_edge(rs, chosen) else ""
        lr_cell = f"{chosen['lr']:g} ({', '.join(f'{x:g}' for x in grid)}{edge})"
        repeats = [r for r in rs if r["lr"] == chosen["lr"]]
        over = [(target_wer(exp_root / r["name"], sets), read_wer(exp_root / r["name"], source_set)) for r in repeats]
        over = [(t["wer"], s["wer"]) for t, s in over if t and s]
        exp = exp_root / chosen["name"]
        tgt, src = target_wer(exp, sets), read_wer(exp, source_set)
        forget = "-" if src is None or base_src is None else f"{src['wer'] - base_src['wer']:+.1f}"
        lines.append(f"| {method} | {budget or '-'} | {chosen['summary']} | {chosen['trainable']:,} | {lr_cell} "
                     f"| {wer_cells(exp, tgt)} | {mean_sd([t for t, _ in over])} | {fmt(src)} "
                     f"| {mean_sd([s for _, s in over])} | {forget} | {seconds(exp)} |")
        if tgt and src:
            points.append((chosen, tgt, src))
            if method == "ssvd_outer":
                outer.append((fraction, budget, tgt["wer"], src["wer"]))
        sweep_counts = [(pooled_counts(exp_root / r["name"], sets), pooled_counts(exp_root / r["name"], [source_set]))
                        for r in sweep]
        if zero_tgt is not None and zero_src is not None and all(t is not None and s is not None for t, s in sweep_counts):
            stacked = [(zero_tgt, zero_src), *sweep_counts]
            sw = Sweep(*(np.stack([pair[side][part] for pair in stacked]) for side in (0, 1) for part in (0, 1)))
            t, s = sw.wers()
            frontier[name] = [(lr, float(a), float(b)) for lr, a, b in zip([0.0, *grid], t, s)]
            for b in {budget, *([] if budget else [c[0][2] for c in configs if c[0][2]])}:
                arrays.setdefault(b, {})[name] = sw
    lines.append("")
    if unselected:
        lines += [f"Not selected (dev set not decoded; run stage 6): {', '.join(unselected)}.", ""]
    if points:
        lines += [f"![{p.stem}]({p.name})" for p in plot_selected(domain, points, zero, base_src, out_dir)] + [""]
    lines += ["### Every learning rate (seed 0)", "",
              f"| configuration | lr | dev WER ({dev}) | target WER | source WER | forgetting |", "|---|---|---|---|---|---|",
              *sweep_lines, ""]
    if frontier:
        path = plot_frontier(domain, frontier, out_dir)
        lines += [f"![{path.stem}]({path.name})", ""]
    lines += matched_section(arrays)
    if len({f for f, *_ in outer}) > 1:
        path = plot_outer(domain, outer, out_dir)
        lines += ["### SSVD-O: outer share of the rotation parameters", "",
                  "| outer fraction | budget | target WER | source WER |", "|---|---|---|---|",
                  *[f"| {f:g} | {b} | {t:.1f} | {s:.1f} |" for f, b, t, s in sorted(outer)], "",
                  f"![{path.stem}]({path.name})", ""]
    return lines


def matched_section(arrays: dict[str, dict[str, Sweep]]) -> list[str]:
    """Forgetting at matched learning, one table per budget (full fine-tuning joins every budget)."""
    lines = []
    for budget, sweeps in sorted(arrays.items()):
        if not budget or len(sweeps) < 2:
            continue
        reference = next((n for n in sweeps if n.split()[0] == REFERENCE), None)
        m = matched_forgetting(sweeps, reference)
        lines += [f"### Forgetting at matched learning, {budget}", "",
                  f"Source-WER change against zero-shot where each method's sweep first reaches {m.level:.1f} % target WER",
                  "(the best target WER every method reaches), interpolated between the two learning rates that",
                  "bracket it, never extrapolated; 95 % paired utterance-bootstrap intervals, the level recomputed in",
                  "every resample.", "",
                  f"| method | forgetting at {m.level:.1f} % target WER | minus {reference or REFERENCE}'s |", "|---|---|---|"]
        for name in sweeps:
            value, ci, vs = m.forgetting[name], m.intervals[name], m.versus[name]
            cell = "not reached" if value is None else f"{value:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]"
            diff = "-" if vs is None or name == reference else f"{vs[0]:+.1f} [{vs[1]:+.1f}, {vs[2]:+.1f}]"
            lines.append(f"| {name} | {cell} | {diff} |")
        lines.append("")
    return lines


def error_breakdown(exp_root: Path, selected: dict[tuple, dict | None], domains: dict[str, tuple[str, list[str]]],
                    source_set: str) -> list[str]:
    """ESPnet's scoring table (Snt, Wrd, Corr, Sub, Del, Ins, Err, S.Err in %) of every test set of
    zero-shot and the selected runs (``selected``: each configuration's choice, None if none)."""
    lines = []
    for domain, (_, sets) in domains.items():
        chosen = sorted(c["name"] for k, c in selected.items() if k[0] == domain and c is not None)
        models = [("zero-shot", exp_root / "source"), *((name, exp_root / name) for name in chosen)]
        for name, exp in models:
            for test in sets + [source_set]:
                w = read_wer(exp, test)
                if w is None or "hits" not in w:
                    continue
                pct = [100 * w[k] / max(w["words"], 1) for k in ("hits", "substitutions", "deletions", "insertions")]
                lines.append(f"| {name} | {test} | {w['utterances']} | {w['words']} | "
                             + " | ".join(f"{v:.1f}" for v in pct)
                             + f" | {w['wer']:.1f} | {100 * w['sentence_errors'] / max(w['utterances'], 1):.1f} |")
    if not lines:
        return []
    return ["## Error breakdown (selected runs, seed 0)", "",
            "| model | test set | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |", "|---|---|---|---|---|---|---|---|---|---|",
            *lines, ""]


def report(settings: Settings) -> None:
    write_report(settings.exp, {d: (set_name(settings.dev_set, d), test_sets(settings, d)) for d in settings.domains},
                 settings.source_test_set, settings.results)
