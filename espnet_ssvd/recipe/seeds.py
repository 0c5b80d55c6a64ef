"""Stage 7: each configuration's learning rate, selected on its target dev set, and the selected
configurations trained again with --seeds - 1 further seeds, then decoded like stage 6."""

import json

from ..adapters import AdapterError
from ..fileio import atomic_write_text
from ..progress import log
from .decode import decode_experiments, read_plan
from .jobs import run_jobs
from .plan import Experiment, training_jobs
from .results import at_edge, groups, select
from .settings import Settings, set_name
from .source import source_model


def seeds(settings: Settings) -> None:
    selected, missing = [], []
    for key, runs in groups(read_plan(settings)).items():
        chosen = select(settings.exp, runs, set_name(settings.dev_set, key[0]))
        if chosen is None:
            missing.append(runs[0]["name"])
            continue
        grid = ", ".join(f"{r['lr']:g}" for r in runs)
        edge = " - at the edge of the grid: the best may lie outside it" if at_edge(runs, chosen) else ""
        log(f"{' '.join(str(k) for k in key if k not in ('', None))}: lr {chosen['lr']:g} of {grid}{edge}")
        selected.append(chosen)
    if missing:
        raise AdapterError(f"no dev WER for {', '.join(missing)}: run stage 6 (decode) first")
    atomic_write_text(settings.exp / "selection.json", json.dumps(selected, indent=1))
    runs = [Experiment.from_record({**r, "seed": s}) for r in selected for s in range(1, settings.seeds)]
    if not runs:
        return
    log(f"{len(runs)} more runs: {len(selected)} selected configurations x {settings.seeds - 1} seeds")
    run_jobs(settings, "seeds", training_jobs(settings, source_model(settings), runs))
    decode_experiments(settings, "seeds_decode", [e.record() for e in runs])
