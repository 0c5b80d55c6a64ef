"""The model adaptation starts from: a pretrained one (``--model``: unpacked by espnet_model_zoo,
or a Whisper checkpoint with the ESPnet config made for it), or the one stage 3 trains on the
source domain, with its model family, config, weights and tokens."""

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from ..adapters import AdapterError
from ..fileio import atomic_path, atomic_write_text
from ..pretrained import resolve_pretrained
from ..progress import log
from ..tasks import task_class
from ..whisper.checkpoints import is_whisper, whisper_checkpoint
from ..whisper.config import export_token_list, whisper_config
from .family import FAMILIES, ModelFamily
from .settings import Settings


@dataclass(frozen=True)
class Source:
    family_name: str  # a key of FAMILIES
    config: Path
    model_file: Path
    token_list: Path
    token_type: str
    bpemodel: str  # a sentencepiece model file, or the name of Whisper's tokenizer

    @property
    def family(self) -> ModelFamily:
        return FAMILIES[self.family_name]

    @property
    def task(self) -> str:
        return self.family.task


def source_dir(settings: Settings) -> Path:
    return settings.exp / "source"


def fetch_pretrained(settings: Settings) -> None:
    """Put ``--model`` into exp/source (config, weights, tokens, model family)."""
    exp = source_dir(settings)
    if (exp / ".done").exists():
        return
    if is_whisper(settings.model):
        fetch_whisper(settings, exp)
    else:
        fetch_zoo(settings, exp)
    atomic_write_text(exp / "pretrained_name", settings.model + "\n")
    (exp / ".done").touch()


def fetch_whisper(settings: Settings, exp: Path) -> None:
    """The ESPnet config of the Whisper checkpoint, its token list, and its weights as an ESPnet
    state dict (what every adaptation loads with --init_param)."""
    checkpoint = whisper_checkpoint(settings.model, settings.pretrained_cachedir)
    log(f"Whisper model {settings.model}: {checkpoint}")
    exp.mkdir(parents=True, exist_ok=True)
    export_token_list(exp / "tokens.txt")
    config = whisper_config(checkpoint, (exp / "tokens.txt").resolve(), pad_seconds=settings.whisper_pad_seconds)
    atomic_write_text(exp / "whisper.yaml", yaml.safe_dump(config, sort_keys=False))
    # Every option, ESPnet's defaults filled in, as in the config.yaml of a trained model.
    task = task_class("asr")
    args = task.get_parser().parse_args(["--config", str(exp / "whisper.yaml")])
    model = task.build_model(args)
    # build_model replaced the token list's path by its contents: 51,865 lines in every config.
    args.token_list = config["token_list"]
    atomic_write_text(exp / "config.yaml", yaml.safe_dump(vars(args), sort_keys=False))
    with atomic_path(exp / "pretrained.pth") as tmp:
        torch.save(model.state_dict(), tmp)
    atomic_write_text(exp / "family", "whisper\n")


def fetch_zoo(settings: Settings, exp: Path) -> None:
    """Unpack ``--model`` with espnet_model_zoo (config, weights link, tokens)."""
    log(f"fetching pretrained model {settings.model} (espnet_model_zoo)")
    info = resolve_pretrained(settings.model, settings.pretrained_cachedir)
    task = next((t for t in ("asr", "s2t") if f"{t}_train_config" in info and f"{t}_model_file" in info), None)
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
    atomic_write_text(exp / "family", task + "\n")


def source_model(settings: Settings) -> Source:
    exp = source_dir(settings)
    if settings.model:
        fetch_pretrained(settings)
        config = yaml.safe_load((exp / "config.yaml").read_text())
        # exp dirs made before Whisper came recorded the family as "task"
        recorded = exp / "family" if (exp / "family").exists() else exp / "task"
        return Source(recorded.read_text().strip(), exp / "config.yaml", exp / "pretrained.pth",
                      Path(config["token_list"]), config.get("token_type", "bpe"), str(config["bpemodel"]))
    return Source("asr", exp / "config.yaml", exp / "model.pth", settings.token_dir / "tokens.txt", "bpe",
                  str(settings.token_dir / "bpe.model"))


def model_file(exp: Path) -> Path:
    for name in ("valid.loss.ave.pth", "valid.acc.ave.pth", "valid.cer_ctc.ave.pth", "pretrained.pth", "latest.pth"):
        if (exp / name).exists():
            return exp / name
    raise SystemExit(f"no trained model in {exp}: run the training stage first")
