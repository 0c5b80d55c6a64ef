"""Stage 6: RESULTS.md, one row per method: EER and minDCF on the test trials, with the frontend
parameters each method trains, the back-end's, and the budget."""

import json
import time

from ..fileio import atomic_write_text
from .prepare import read_plan
from .settings import SpkSettings
from .train import run_dir


def report(settings: SpkSettings) -> None:
    plan, runs = read_plan(settings)
    rows = ["| method | EER (%) | minDCF | frontend params trained | + back-end | adapter |",
            "|---|---|---|---|---|---|"]
    for run in runs:
        path = run_dir(settings, run) / f"score_{settings.test_set}" / "result.json"
        result = json.loads(path.read_text())
        share = 100 * run.trainable / plan["frontend"]
        rows.append(f"| {run.name} | {result['eer']:.2f} | {result['min_dcf']:.3f} | {run.trainable:,} ({share:.2f} %) "
                    f"| {plan['backend']:,} | {run.summary} |")
    p_target = settings.p_target
    text = [f"# synth_spk: speaker verification on synthesised speakers ({settings.model})", "",
            f"Frontend `{settings.model}`: {plan['frontend']:,} parameters; budget {plan['budget']} of them per "
            f"adapter method (matched over the frontend's target layers); `frozen`: the frontend frozen, only the "
            f"MHFA back-end trains (the baseline). Every method also trains the back-end and loss "
            f"({plan['backend']:,} parameters).", "",
            f"Test set `{settings.test_set}`: {result['trials']} trials ({result['targets']} target), cosine scoring; "
            f"minDCF with p_target {p_target:g}, c_miss = c_fa = 1.", "",
            "Synthetic speakers (a TTS voice at a pitch and rate) are far easier and less varied than real ones: "
            "these numbers are not comparable with VoxCeleb's (see README.md).", "", *rows, "",
            f"Generated {time.strftime('%Y-%m-%d %H:%M')}."]
    atomic_write_text(settings.results, "\n".join(text) + "\n")
