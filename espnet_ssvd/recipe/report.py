"""Stage 7: RESULTS.md and plots of an adaptation recipe, from what the run wrote under exp/."""

import json
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..budget import DEFAULT_METHODS  # noqa: E402
from ..fileio import atomic_path, atomic_write_text  # noqa: E402
from ..scoring import wer_summary  # noqa: E402
from .data import test_sets  # noqa: E402
from .settings import Settings  # noqa: E402


def read_wer(exp: Path, name: str) -> dict | None:
    path = exp / f"decode_{name}" / "wer.json"
    return json.loads(path.read_text()) if path.exists() else None


def target_wer(exp: Path, sets: list[str]) -> dict | None:
    """WER on a domain's test set, or pooled over its test sets (word-weighted, bootstrap over all
    their utterances) when it has several, e.g. one per accent."""
    wers = [read_wer(exp, name) for name in sets]
    if any(w is None for w in wers):
        return None
    if len(wers) == 1:
        return wers[0]
    return wer_summary(sum((w["errors"] for w in wers), []), sum((w["lengths"] for w in wers), []))


def fmt(w: dict | None) -> str:
    return "-" if w is None else f"{w['wer']:.1f} [{w['ci_low']:.1f}, {w['ci_high']:.1f}]"


def seconds(exp: Path) -> str:
    path = exp / "train_time"
    return f"{float(path.read_text()):.0f}" if path.exists() else "-"


ORDER = {m: i for i, m in enumerate(DEFAULT_METHODS)}  # baselines first, as run.sh runs them


def write_report(exp_root: Path, domains: dict[str, list[str]], source_set: str, results: Path) -> None:
    """``domains``: each target domain's test sets; ``source_set``: the forgetting set."""
    # Every finished experiment of this exp/ dir, whichever run.sh invocation trained it.
    plan = sorted((json.loads(p.read_text()) for p in exp_root.glob("*/experiment.json") if (p.parent / ".done").exists()),
                  key=lambda e: (e["method"] == "full", ORDER.get(e["method"], len(ORDER)), e["method"], e["trainable"],
                                 e["outer_fraction"] or 0))
    source = exp_root / "source"
    base_src = read_wer(source, source_set)
    lines = ["# Results", "",
             "WER (%) with 95 % bootstrap confidence intervals over utterances. Forgetting is the change of",
             f"source-domain WER ({source_set}) against the source model. Written by `espnet_ssvd.recipe.report` from",
             f"{exp_root}/ of this run; machine: {platform.machine()}, {platform.python_version()}.", ""]
    name_file = source / "pretrained_name"
    if name_file.exists():
        lines += [f"Source model: {name_file.read_text().strip()} (pretrained); {source_set} WER {fmt(base_src)}.", ""]
    else:
        lines += [f"Source model: {source_set} WER {fmt(base_src)}; training time {seconds(source)} s.", ""]
    for domain, sets in domains.items():
        rows = [e for e in plan if e["domain"] == domain]
        pooled = len(sets) > 1
        columns = (["target WER (all)"] if pooled else ["target WER"]) + (sets if pooled else [])
        zero = target_wer(source, sets)

        def wer_cells(exp: Path, tgt: dict | None) -> str:
            return " | ".join([fmt(tgt)] + ([fmt(read_wer(exp, name)) for name in sets] if pooled else []))

        lines += [f"## {domain}", "",
                  f"| method | budget | settings | trainable params | {' | '.join(columns)} | source WER | forgetting "
                  "| train time (s) |",
                  "|" + "---|" * (7 + len(columns)),
                  f"| pretrained (zero-shot) | - | - | 0 | {wer_cells(source, zero)} | {fmt(base_src)} | 0.0 | - |"]
        points = []
        for e in rows:
            exp = exp_root / e["name"]
            tgt, src = target_wer(exp, sets), read_wer(exp, source_set)
            forget = "-" if src is None or base_src is None else f"{src['wer'] - base_src['wer']:+.1f}"
            lines.append(f"| {e['method']} | {e['budget'] or '-'} | {e['summary']} | {e['trainable']:,} "
                         f"| {wer_cells(exp, tgt)} | {fmt(src)} | {forget} | {seconds(exp)} |")
            if tgt and src:
                points.append((e, tgt, src))
        lines.append("")
        if points:
            plots = plot_domain(domain, points, zero, base_src, results.parent)
            lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    skipped_file = exp_root / "infeasible.json"
    skipped = json.loads(skipped_file.read_text()) if skipped_file.exists() else []
    if skipped:
        lines += ["## Not run: budget out of reach", ""]
        lines += [f"- {s['method']} at {s['budget']}: {s['why']}" for s in skipped] + [""]
    atomic_write_text(results, "\n".join(lines) + "\n")
    print(f"wrote {results}")


def label(e: dict) -> str:
    return e["method"] + (f" of={e['outer_fraction']:g}" if e["outer_fraction"] is not None else "")


def plot_domain(domain: str, points, zero, base_src, out_dir: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for e, tgt, src in points:
        ax.errorbar(src["wer"], tgt["wer"], xerr=[[src["wer"] - src["ci_low"]], [src["ci_high"] - src["wer"]]],
                    yerr=[[tgt["wer"] - tgt["ci_low"]], [tgt["ci_high"] - tgt["wer"]]], fmt="o", capsize=2,
                    label=f"{label(e)} {e['budget']}".strip())
    if zero and base_src:
        ax.plot(base_src["wer"], zero["wer"], "k*", markersize=12, label="pretrained")
    ax.set_xlabel("source WER (%)  (forgetting →)")
    tradeoff = save_plot(fig, ax, domain, "learning vs forgetting", out_dir / f"tradeoff_{domain}.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    by_method: dict[str, list] = {}
    for e, tgt, _ in points:
        if e["budget"]:
            by_method.setdefault(label(e), []).append((float(e["trainable"]), tgt["wer"]))
    for name, xy in sorted(by_method.items()):
        xy.sort()
        ax.plot([x for x, _ in xy], [y for _, y in xy], "o-", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (budget)")
    return [tradeoff, save_plot(fig, ax, domain, "target WER against budget", out_dir / f"budget_{domain}.png")]


def save_plot(fig, ax, domain: str, title: str, path: Path) -> Path:
    ax.set_ylabel(f"{domain} target WER (%)")
    ax.set_title(f"{domain}: {title}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def report(settings: Settings) -> None:
    write_report(settings.exp, {d: test_sets(settings, d) for d in settings.domains}, settings.source_test_set,
                 settings.results)
