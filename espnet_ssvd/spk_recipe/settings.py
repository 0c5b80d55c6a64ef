"""The speaker recipe's options: one typed, validated object every stage reads (the job engine of
espnet_ssvd.recipe.jobs reads exp, cluster, max_parallel_jobs, ngpu, slurm_conf and job_timeout_min)."""

from dataclasses import dataclass
from pathlib import Path

import yaml

from ..adapters import ADAPTERS, AdapterError
from ..budget import COVERAGES, parse_budget
from ..recipe.settings import CLUSTERS

BASELINE = "frozen"  # the frozen frontend: only the MHFA back-end (and the loss) trains
# verification: speaker embeddings scored on trial pairs (EER, minDCF); spoof: a bona fide / spoof
# countermeasure, each test utterance scored (EER per unseen attack, beside a trivial baseline)
TASKS = ("verification", "spoof")


@dataclass(frozen=True)
class SpkSettings:
    task: str = "verification"
    data: Path = Path("data")
    exp: Path = Path("exp")
    model: str = "wavlm_tiny"  # conf/model/<model>.yaml: the frontend (whisper_base, wavlm_tiny, ...)
    model_dir: Path = Path("conf/model")
    train_config: Path = Path("conf/train.yaml")  # back-end, loss, optimiser and batching of every training
    methods_config: Path = Path("conf/methods.yaml")  # per method: lr and adapter options the budget leaves
    methods: tuple[str, ...] = (BASELINE, "lora", "dora", "pissa", "ssvd", "ssvd_outer", "spectral_lora", "unipet", "full")
    budget: str = "1%"  # of the frontend's parameters, or a count
    budget_tolerance: float = 0.05
    coverage: str = "full"
    train_args: tuple[str, ...] = ()  # extra ESPnet options of every training
    p_target: float = 0.05  # minDCF's target prior (ESPnet's speaker validation uses 0.05)
    test_set: str = "test"
    valid_set: str = "dev"
    results: Path = Path("RESULTS.md")
    ngpu: int = 0
    cluster: str = "local"
    max_parallel_jobs: int = 2
    slurm_conf: Path = Path("conf/slurm.yaml")
    job_timeout_min: int = 3 * 24 * 60

    def __post_init__(self):
        parse_budget(self.budget, 10**12)  # the syntax only: the frontend's size is known at stage 2
        unknown = [m for m in self.methods if m != BASELINE and m not in ADAPTERS]
        if unknown:
            raise AdapterError(f"--methods: unknown {', '.join(unknown)}; choose from {BASELINE} {' '.join(ADAPTERS)}")
        if self.cluster not in CLUSTERS:
            raise AdapterError(f"--cluster {self.cluster!r}: choose one of {', '.join(CLUSTERS)}")
        if self.task not in TASKS:
            raise AdapterError(f"--task {self.task!r}: choose one of {', '.join(TASKS)}")
        if self.coverage not in COVERAGES:
            raise AdapterError(f"--coverage {self.coverage!r}: choose one of {', '.join(COVERAGES)}")
        if not 0 < self.p_target < 1:
            raise AdapterError(f"--p_target {self.p_target}: a prior in (0, 1)")
        for name in ("max_parallel_jobs", "job_timeout_min"):
            if getattr(self, name) < 1:
                raise AdapterError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for path in (self.model_yaml, self.train_config, self.methods_config):
            if not path.is_file():
                raise AdapterError(f"{path} does not exist (--model {self.model}: conf/model/<model>.yaml)")
        missing = [m for m in self.methods if m not in self.method_confs()]
        if missing:
            raise AdapterError(f"{self.methods_config} has no entry for {', '.join(missing)}")

    @property
    def model_yaml(self) -> Path:
        return self.model_dir / f"{self.model}.yaml"

    def method_confs(self) -> dict:
        return yaml.safe_load(self.methods_config.read_text()) or {}
