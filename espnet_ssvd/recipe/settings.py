"""The recipe's options: one typed, validated object that every stage reads."""

import argparse
import shlex
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import yaml

from ..adapters import AdapterError
from ..budget import COVERAGES, parse_budget

CLUSTERS = ("local", "slurm")
# What --slurm_conf may set (submitit.SlurmExecutor's names); the GPUs come from --ngpu.
SLURM_KEYS = {"partition", "time", "mem", "cpus_per_task", "nodes", "constraint", "account", "qos",
              "exclude", "additional_parameters", "setup"}
DECODE_METHODS = ("beam", "ctc_greedy")
# Learning-rate grids of the adapt_<method>.yaml files (lr_grid: {minimal: [...], full: [...]});
# none: one run at the YAML's optim_conf.lr.
SWEEPS = ("none", "minimal", "full")


@dataclass(frozen=True)
class Settings:
    data: Path = Path("data")
    exp: Path = Path("exp")
    token_dir: Path = Path("data/token_list/bpe")
    bpe_size: int = 300
    source_config: Path = Path("conf/tuning/train_source.yaml")
    model: str = ""  # pretrained source model: a zoo name, packed .zip, whisper_<size> or .pt; empty: train one
    pretrained_cachedir: str | None = None
    whisper_pad_seconds: float = 30.0  # Whisper's encoder input, padded to this length (0: not padded)
    adapt_set: str = "{domain}_adapt"  # {domain} stands for each target domain
    dev_set: str = "{domain}_dev"
    test_sets: tuple[str, ...] = ("{domain}_test",)  # names or globs
    source_test_set: str = "test_source"  # the forgetting set
    lang_sym: str = "<eng>"
    decode_method: str = "beam"
    beam_size: int = 5
    decode_batch_size: int = 16
    nj: int = 2  # parallel audio formatting
    adapt_config_dir: Path = Path("conf/tuning")
    domains: tuple[str, ...] = ("child", "accent")
    methods: tuple[str, ...] = ("lora", "dora", "pissa", "ssvd", "ssvd_outer", "full")
    budgets: tuple[str, ...] = ("1%",)
    budget_tolerance: float = 0.02
    outer_fractions: tuple[float, ...] = (0.5,)
    sweep: str = "minimal"  # which lr_grid of each method YAML the learning-rate sweep runs
    lrs: str = ""  # instead of the YAML grids: "1e-4 1e-3" for every method, or "lora=1e-4,1e-3 ssvd=3e-4,1e-3"
    seeds: int = 1  # runs of each selected configuration (different ESPnet seeds)
    coverage: str = "full"  # full: every target layer, mixed sizes; subset: one size on a subset of layers
    targets: tuple[str, ...] = ("all_linear",)
    train_args: tuple[str, ...] = ()  # extra ESPnet options for every training
    results: Path = Path("RESULTS.md")
    ngpu: int = 0  # GPUs per training job (ESPnet's --ngpu; > 1 trains with DDP)
    device: str = ""  # decoding device; empty: cuda when ngpu > 0, else cpu
    cluster: str = "local"
    max_parallel_jobs: int = 2  # local jobs at once
    slurm_conf: Path = Path("conf/slurm.yaml")
    job_timeout_min: int = 3 * 24 * 60

    def __post_init__(self):
        if not self.device:
            object.__setattr__(self, "device", "cuda" if self.ngpu > 0 else "cpu")
        for budget in self.budgets:
            parse_budget(budget, 10**12)  # only the syntax: the model size is known at stage 5
        if not all(0 <= f <= 1 for f in self.outer_fractions):
            raise AdapterError(f"--outer_fractions {self.outer_fractions}: each must be in [0, 1]")
        if not 0 <= self.whisper_pad_seconds <= 30:
            raise AdapterError(f"--whisper_pad_seconds {self.whisper_pad_seconds:g}: Whisper's encoder takes at most "
                               "30 s; give a length in (0, 30], or 0 for no padding")
        if self.cluster not in CLUSTERS:
            raise AdapterError(f"--cluster {self.cluster!r}: choose one of {', '.join(CLUSTERS)}")
        if self.decode_method not in DECODE_METHODS:
            raise AdapterError(f"--decode_method {self.decode_method!r}: choose one of {', '.join(DECODE_METHODS)}")
        if self.sweep not in SWEEPS:
            raise AdapterError(f"--sweep {self.sweep!r}: choose one of {', '.join(SWEEPS)}")
        if self.coverage not in COVERAGES:
            raise AdapterError(f"--coverage {self.coverage!r}: choose one of {', '.join(COVERAGES)}")
        lr_override(self.lrs, self.methods)
        for name in ("max_parallel_jobs", "beam_size", "decode_batch_size", "nj", "job_timeout_min", "seeds"):
            if getattr(self, name) < 1:
                raise AdapterError(f"--{name} must be at least 1, got {getattr(self, name)}")

    def dump_dir(self, name: str) -> Path:
        """Where a data dir's formatted audio goes (ESPnet's dump/raw, beside data/)."""
        return self.data.absolute().parent / "dump" / "raw" / name

    def speech_scp(self, name: str) -> Path:
        """The wav.scp training and decoding read: the formatted one when stage 2 had to format audio."""
        dumped = self.dump_dir(name) / "wav.scp"
        return dumped if dumped.exists() else self.data / name / "wav.scp"


def lr_override(text: str, methods: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """--lrs: {method: grid} for the methods it names ("1e-4 1e-3" names them all)."""
    hint = "give learning rates for every method ('1e-4 1e-3') or per method ('lora=1e-4,1e-3 ssvd=3e-4,1e-3')"
    if not text.strip():
        return {}
    entries = text.split()
    per_method = "=" in text
    grids = {}
    for entry in entries if per_method else [" ".join(entries)]:
        method, _, values = entry.rpartition("=") if per_method else ("", "", entry)
        if per_method and method not in methods:
            raise AdapterError(f"--lrs {text!r}: {method or entry!r} is not one of the methods run "
                               f"({' '.join(methods)}); {hint}")
        try:
            grid = tuple(float(v) for v in values.replace(",", " ").split())
        except ValueError:
            raise AdapterError(f"cannot read --lrs {text!r}: {hint}") from None
        if not grid or any(not lr > 0 for lr in grid):
            raise AdapterError(f"--lrs {text!r}: learning rates must be positive numbers; {hint}")
        grids.update({m: tuple(sorted(set(grid))) for m in ([method] if per_method else methods)})
    return grids


def set_name(template: str, domain: str) -> str:
    return template.replace("{domain}", domain)


def split_floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(f) for f in text.split())
    except ValueError:
        raise AdapterError(f"cannot read --{option} {text!r}: give numbers in [0, 1], e.g. '0 0.25 0.5'") from None


def parse(argv: list[str] | None, stages: list[str], description: str, cls: type = Settings) -> tuple[str, Settings]:
    """(stage, settings) from the command line; list options are space-separated strings. ``cls``: the
    settings dataclass whose fields are the options (the speaker recipe has its own)."""
    parser = argparse.ArgumentParser(prog="python -m espnet_ssvd.recipe", description=description)
    parser.add_argument("stage", choices=["check", *stages],
                        help="check: only validate the options, which every stage does before it starts")
    # the fields' defaults, not cls(): its validation checks files a recipe may not have (the
    # default model's YAML) before the command line has named the ones it has
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(cls)}
    for f in fields(cls):
        value = defaults[f.name]
        default = " ".join(map(str, value)) if isinstance(value, tuple) else value
        parser.add_argument(f"--{f.name}", default=default)
    ns = vars(parser.parse_args(argv))
    stage = ns.pop("stage")
    values = {}
    for f in fields(cls):
        raw, default = ns[f.name], defaults[f.name]
        if f.name == "outer_fractions":
            values[f.name] = split_floats(raw, f.name)
        elif f.name == "train_args":
            values[f.name] = tuple(shlex.split(raw))
        elif isinstance(default, tuple):
            values[f.name] = tuple(raw.split())
        elif isinstance(default, Path):
            values[f.name] = Path(raw)
        elif f.name == "pretrained_cachedir":
            values[f.name] = raw or None
        elif not isinstance(default, (int, float)):
            values[f.name] = raw
        else:
            try:
                values[f.name] = type(default)(raw)
            except ValueError:
                raise AdapterError(f"--{f.name} {raw!r}: expected a {type(default).__name__}") from None
    return stage, cls(**values)


def slurm_parameters(settings: Settings) -> dict:
    """submitit.SlurmExecutor's parameters of every job: --slurm_conf's, with --ngpu GPUs."""
    conf = yaml.safe_load(settings.slurm_conf.read_text()) if settings.slurm_conf.exists() else None
    if not isinstance(conf, dict):
        raise AdapterError(f"--cluster slurm needs a YAML mapping of Slurm settings in {settings.slurm_conf} "
                           f"(e.g. partition: gpu, time: 2880, mem: 64G, cpus_per_task: 8)")
    unknown = sorted(set(conf) - SLURM_KEYS)
    if unknown:
        raise AdapterError(f"{settings.slurm_conf}: unknown Slurm settings {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(SLURM_KEYS))} (GPUs come from --ngpu)")
    return {"time": settings.job_timeout_min, **conf, "gpus_per_node": settings.ngpu or None,
            "ntasks_per_node": 1}
