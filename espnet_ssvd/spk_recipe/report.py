"""Stage 6: RESULTS.md, one row per method with the frontend parameters it trains, the back-end's
and the budget: EER and minDCF on the test trials (``--task verification``), or the pooled EER and
the EER per attack, beside the trivial baseline's (``--task spoof``)."""

import json
import time
from pathlib import Path

from ..fileio import atomic_write_text
from .layout import BASELINE_DESCRIPTION, BASELINE_NAME, baseline_dir, read_plan, run_dir
from .settings import SpkSettings


def read_result(d: Path, settings: SpkSettings) -> dict:
    return json.loads((d / f"score_{settings.test_set}" / "result.json").read_text())


def params(run, plan: dict) -> str:
    return f"{run.trainable:,} ({100 * run.trainable / plan['frontend']:.2f} %) | {plan['backend']:,} | {run.summary}"


def verification_rows(settings: SpkSettings, plan: dict, runs: list) -> list[str]:
    rows = ["| method | EER (%) | minDCF | frontend params trained | + back-end | adapter |", "|---|---|---|---|---|---|"]
    for run in runs:
        r = read_result(run_dir(settings, run), settings)
        rows.append(f"| {run.name} | {r['eer']:.2f} | {r['min_dcf']:.3f} | {params(run, plan)} |")
    return [f"Test set `{settings.test_set}`: {r['trials']} trials ({r['targets']} target), cosine scoring; minDCF "
            f"with p_target {settings.p_target:g}, c_miss = c_fa = 1.", "", *rows]


def spoof_rows(settings: SpkSettings, plan: dict, runs: list) -> list[str]:
    results = [(run, read_result(run_dir(settings, run), settings)) for run in runs]
    base = read_result(baseline_dir(settings), settings)
    systems = list(base["per_system"])
    head = ["| method | EER (%) pooled | " + " | ".join(f"EER {s}" for s in systems)
            + " | frontend params trained | + back-end | adapter |", "|---" * (len(systems) + 5) + "|"]

    def cells(r: dict) -> str:
        return f"{r['eer']:.2f} | " + " | ".join(f"{r['per_system'][s]:.2f}" for s in systems)

    rows = [f"| {run.name} | {cells(r)} | {params(run, plan)} |" for run, r in results]
    rows.append(f"| {BASELINE_NAME} | {cells(base)} | - | - | {BASELINE_DESCRIPTION} (no SSL model) |")
    return [f"Test set `{settings.test_set}`: {base['bonafide']} bona fide and {base['spoof']} spoofed utterances "
            f"(attacks {', '.join(systems)}); score: the cosine of the embedding with the bona fide class minus that "
            "with the spoof class; EER with bona fide as the positive class, pooled and per attack.", "",
            *head, *rows]


def report(settings: SpkSettings) -> None:
    plan, runs = read_plan(settings)
    table = (spoof_rows if settings.task == "spoof" else verification_rows)(settings, plan, runs)
    what = "spoof detection" if settings.task == "spoof" else "speaker verification"
    text = [f"# {Path.cwd().parent.name}: {what} ({settings.model})", "",
            f"Frontend `{settings.model}`: {plan['frontend']:,} parameters; budget {plan['budget']} of them per "
            f"adapter method (matched over the frontend's target layers); `frozen`: the frontend frozen, only the "
            f"MHFA back-end trains. Every method also trains the back-end and loss ({plan['backend']:,} parameters).",
            "", *table, "", "What these numbers can and cannot show: README.md.", "",
            f"Generated {time.strftime('%Y-%m-%d %H:%M')}."]
    atomic_write_text(settings.results, "\n".join(text) + "\n")
