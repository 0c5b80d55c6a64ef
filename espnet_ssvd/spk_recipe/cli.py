"""``python -m espnet_ssvd.spk_recipe STAGE [options]``: the stages spk.sh runs, after the options
are checked. A stage's module is imported only when it runs (ESPnet's imports take 15-30 s)."""

from ..recipe.cli import main as recipe_main
from .settings import SpkSettings

STAGES = {"prepare": "prepare", "train": "train", "extract": "extract", "score": "score", "report": "report"}
DOC = """The stages of the speaker recipes (egs2/TEMPLATE/spk1/spk.sh calls them): prepare (shapes, the
base model and the budget-matched plan), train (and, with --task spoof, the trivial baseline),
extract (embeddings of the test set), score (verification: cosine, EER, minDCF; spoof: class
scores, EER pooled and per attack) and report (RESULTS.md)."""


def main(argv: list[str] | None = None) -> int:
    return recipe_main(argv, STAGES, DOC, SpkSettings, __package__, checker=None)
