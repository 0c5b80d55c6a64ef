"""A recipe copied out of the repository for a test to run (without the data, exp and downloads of
a run made in the checkout), and the environment that runs its scripts with this interpreter."""

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_recipe(dest: Path, recipe: str, *shared: str, task: str = "asr1") -> Path:
    """egs2/TEMPLATE, egs2/``recipe`` and the ``shared`` egs2 dirs under ``dest``; the recipe's ``task`` dir."""
    for name in ("TEMPLATE", recipe, *shared):
        shutil.copytree(ROOT / "egs2" / name, dest / "egs2" / name, symlinks=True,
                        ignore=shutil.ignore_patterns("data", "dump", "exp", "downloads", "RESULTS.md", "*.png"))
    return dest / "egs2" / recipe / task


def recipe_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
