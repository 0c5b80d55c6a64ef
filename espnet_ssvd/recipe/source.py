"""The model adaptation starts from: a pretrained one unpacked by espnet_model_zoo (``--model``),
or the one stage 3 trains on the source domain, with its task, config, weights and tokens."""

from dataclasses import dataclass
from pathlib import Path

import yaml

from ..adapters import AdapterError
from ..fileio import atomic_write_text
from ..pretrained import resolve_pretrained
from .family import FAMILIES, ModelFamily
from ..progress import log
from .settings import Settings


@dataclass(frozen=True)
class Source:
    task: str  # "asr" | "s2t"
    config: Path
    model_file: Path
    token_list: Path
    bpemodel: Path

    @property
    def family(self) -> ModelFamily:
        return FAMILIES[self.task]


def source_dir(settings: Settings) -> Path:
    return settings.exp / "source"


def fetch_pretrained(settings: Settings) -> None:
    """Unpack ``--model`` with espnet_model_zoo into exp/source (config, weights link, tokens)."""
    exp = source_dir(settings)
    if (exp / ".done").exists():
        return
    log(f"fetching pretrained model {settings.model} (espnet_model_zoo)")
    info = resolve_pretrained(settings.model, settings.pretrained_cachedir)
    task = next((t for t in FAMILIES if f"{t}_train_config" in info and f"{t}_model_file" in info), None)
    if task is None:
        raise AdapterError(f"the pretrained package {settings.model!r} holds no ASR or S2T model (it has {sorted(info)})")
    config = yaml.safe_load(Path(info[f"{task}_train_config"]).read_text())
    exp.mkdir(parents=True, exist_ok=True)
    token_list = config["token_list"]
    if isinstance(token_list, list):  # the zoo's configs carry the token list inline
        atomic_write_text(exp / "tokens.txt", "\n".join(token_list) + "\n")
        config["token_list"] = str((exp / "tokens.txt").resolve())
    atomic_write_text(exp / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    link = exp / "pretrained.pth"
    link.unlink(missing_ok=True)
    link.symlink_to(Path(info[f"{task}_model_file"]).resolve())
    atomic_write_text(exp / "task", task + "\n")
    atomic_write_text(exp / "pretrained_name", settings.model + "\n")
    (exp / ".done").touch()


def source_model(settings: Settings) -> Source:
    exp = source_dir(settings)
    if settings.model:
        fetch_pretrained(settings)
        config = yaml.safe_load((exp / "config.yaml").read_text())
        return Source((exp / "task").read_text().strip(), exp / "config.yaml", exp / "pretrained.pth",
                      Path(config["token_list"]), Path(config["bpemodel"]))
    return Source("asr", exp / "config.yaml", exp / "model.pth", settings.token_dir / "tokens.txt",
                  settings.token_dir / "bpe.model")


def model_file(exp: Path) -> Path:
    for name in ("valid.loss.ave.pth", "valid.acc.ave.pth", "valid.cer_ctc.ave.pth", "pretrained.pth", "latest.pth"):
        if (exp / name).exists():
            return exp / name
    raise SystemExit(f"no trained model in {exp}: run the training stage first")
