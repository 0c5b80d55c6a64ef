"""``python -m espnet_ssvd.recipe STAGE [options]``: the stages adapt.sh runs, after the options
are checked. A stage's module is imported only when it runs (ESPnet's imports take 15-30 s)."""

import importlib
import logging
import sys

from ..adapters import AdapterError
from .check import check
from .settings import Settings, parse

STAGES = {"tokens": "data", "source": "train", "zeroshot": "decode", "adapt": "plan", "decode": "decode",
          "seeds": "seeds", "report": "report"}
DOC = """The stages of the adaptation recipes (egs2/TEMPLATE/adapt1/adapt.sh calls them).

Data dirs: data/train and data/dev (source domain, only needed to pretrain a source model), the
forgetting set (--source_test_set), and per target domain D the sets named by --adapt_set /
--dev_set / --test_sets with {domain} standing for D. Every training and decoding is a job of
--cluster local (--max_parallel_jobs at once) or slurm (--slurm_conf); a rerun skips finished jobs.
"""


def main(argv: list[str] | None = None, stages: dict[str, str] = STAGES, doc: str = DOC, cls: type = Settings,
         package: str = __package__, checker=check) -> int:
    """Run ``stage`` of ``stages`` ({stage: module of ``package``}) with options of ``cls``, checked
    by ``checker`` first (the speaker recipe, espnet_ssvd.spk_recipe, calls this with its own)."""
    # ESPnet's own basicConfig would send every training's INFO log to the console; each job's
    # log gets it instead (jobs.output_to).
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING, handlers=[console])
    try:
        stage, settings = parse(argv, list(stages), doc, cls)
        if checker is not None:
            checker(settings)
        if stage != "check":
            getattr(importlib.import_module(f"{package}.{stages[stage]}"), stage)(settings)
    except AdapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
