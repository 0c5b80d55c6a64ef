"""The figures of RESULTS.md: learning against forgetting (selected runs, and every sweep point with
each configuration's Pareto front), target WER against budget, and SSVD-O's outer share."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..fileio import atomic_path  # noqa: E402
from .frontier import pareto  # noqa: E402


def label(e: dict) -> str:
    return e["method"] + (f" of={e['outer_fraction']:g}" if e["outer_fraction"] is not None else "")


def plot_selected(domain: str, points, zero, base_src, out_dir: Path) -> list[Path]:
    """``points``: (experiment, target WER, source WER) of the selected runs."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for e, tgt, src in points:
        ax.errorbar(src["wer"], tgt["wer"], xerr=[[src["wer"] - src["ci_low"]], [src["ci_high"] - src["wer"]]],
                    yerr=[[tgt["wer"] - tgt["ci_low"]], [tgt["ci_high"] - tgt["wer"]]], fmt="o", capsize=2,
                    label=f"{label(e)} {e['budget']}".strip())
    if zero and base_src:
        ax.plot(base_src["wer"], zero["wer"], "k*", markersize=12, label="pretrained")
    ax.set_xlabel("source WER (%)  (forgetting →)")
    ax.set_ylabel(f"{domain} target WER (%)")
    tradeoff = save_plot(fig, ax, f"{domain}: learning vs forgetting (selected learning rates)",
                         out_dir / f"tradeoff_{domain}.png")

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
    ax.set_ylabel(f"{domain} target WER (%)")
    return [tradeoff, save_plot(fig, ax, f"{domain}: target WER against budget", out_dir / f"budget_{domain}.png")]


def plot_frontier(domain: str, sweeps: dict[str, list[tuple[float, float, float]]], out_dir: Path) -> Path:
    """``sweeps``: per configuration, its (learning rate, target WER, source WER) points, zero-shot
    (learning rate 0) first. Every point is drawn, the Pareto front as a line."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for i, (name, points) in enumerate(sweeps.items()):
        color = f"C{i % 10}"
        xy = [(t, s) for _, t, s in points]
        ax.plot([t for t, _ in xy], [s for _, s in xy], "o", color=color, alpha=0.5)
        for lr, t, s in points[1:]:
            ax.annotate(f"{lr:g}", (t, s), fontsize=6, color=color, xytext=(2, 2), textcoords="offset points")
        front = [xy[j] for j in pareto(xy)]
        ax.plot([t for t, _ in front], [s for _, s in front], "o-", color=color, label=name)
    ax.plot(*sweeps[next(iter(sweeps))][0][1:], "k*", markersize=12, label="zero-shot")
    ax.set_xlabel(f"{domain} target WER (%)  (← learning)")
    ax.set_ylabel("source WER (%)  (forgetting ↑)")
    return save_plot(fig, ax, f"{domain}: every learning rate, Pareto front per method",
                     out_dir / f"frontier_{domain}.png")


def plot_outer(domain: str, rows: list[tuple[float, str, float, float]], out_dir: Path) -> Path:
    """``rows``: (outer fraction, budget, target WER, source WER) of SSVD-O's selected runs."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, budget in enumerate(sorted({b for _, b, _, _ in rows})):
        xs = sorted((f, t, s) for f, b, t, s in rows if b == budget)
        ax.plot([f for f, _, _ in xs], [t for _, t, _ in xs], "o-", color=f"C{i}", label=f"target WER, {budget}")
        ax.plot([f for f, _, _ in xs], [s for _, _, s in xs], "s--", color=f"C{i}", label=f"source WER, {budget}")
    ax.set_xlabel("outer share of the rotation parameters (outer_fraction)")
    ax.set_ylabel("WER (%)")
    return save_plot(fig, ax, f"{domain}: SSVD-O allocation", out_dir / f"outer_{domain}.png")


def save_plot(fig, ax, title: str, path: Path) -> Path:
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path
