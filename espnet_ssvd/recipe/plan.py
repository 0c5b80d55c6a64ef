"""Stage 5: every (domain, method, budget, outer fraction) with its budget-matched settings and
ESPnet config, trained at each learning rate of its sweep as one job each."""

import json
from dataclasses import asdict, dataclass

import yaml

from ..adapters import AdapterError, match_targets
from ..budget import match_budget, method_targets, parse_budget
from ..fileio import atomic_write_text
from ..pretrained import ARCHITECTURE_KEYS
from ..tasks import task_class
from .check import lr_grid, matched_confs, method_yaml
from .jobs import run_jobs
from ..progress import log
from .settings import Settings, set_name
from .source import Source, model_file, source_dir, source_model
from .train import training_job


@dataclass
class Experiment:
    domain: str
    method: str
    budget: str  # "" for full fine-tuning
    outer_fraction: float | None
    settings: dict
    trainable: int
    summary: str = "-"  # settings as RESULTS.md shows them (BudgetRow.describe)
    layers: list[str] | None = None  # the subset of targets a coarse size grid adapts; None: every target
    lr: float = 0.0
    seed: int = 0  # added to the YAML's seed: seed 0 is the sweep's run, 1.. repeat the selected one

    @property
    def name(self) -> str:
        name = f"adapt_{self.domain}_{self.method}"
        if self.budget:
            name += "_" + self.budget.replace("%", "pct")
        if self.outer_fraction is not None:
            name += f"_of{self.outer_fraction:g}"
        name += f"_lr{self.lr:g}"
        return name + (f"_seed{self.seed}" if self.seed else "")

    def record(self) -> dict:
        return {**asdict(self), "name": self.name}

    @classmethod
    def from_record(cls, record: dict) -> "Experiment":
        return cls(**{k: v for k, v in record.items() if k != "name"})


def plan(settings: Settings, src: Source) -> list[Experiment]:
    """Every (domain, method, budget, outer fraction) to run, with budget-matched settings."""
    model, _ = task_class(src.task).build_model_from_file(src.config, None, "cpu")
    total = sum(p.numel() for p in model.parameters())
    confs = {m: matched_confs(settings, m) for m in settings.methods if m != "full"}
    experiments, infeasible = [], []
    targets = match_targets(model, list(settings.targets))
    for budget in settings.budgets:
        count = parse_budget(budget, total)
        for method, runs in confs.items():
            names, shapes = method_targets(model, method, targets)  # unipet: the layers holding the targets
            for fraction, conf in runs:
                try:
                    row = match_budget(method, shapes, count, conf, settings.budget_tolerance, names=names,
                                       coverage=settings.coverage)
                except AdapterError as err:
                    # One unreachable (method, budget) pair must not stop a sweep: it is listed
                    # in RESULTS.md instead of a row.
                    log(f"not running {method} at {budget}: {err}")
                    infeasible.append({"method": method, "budget": budget, "outer_fraction": fraction, "why": str(err)})
                    continue
                layers = None if row.layers is None else row.targets(names)
                experiments += [Experiment(d, method, budget, fraction, row.settings, row.trainable, row.describe(),
                                           layers, lr) for d in settings.domains for lr in lr_grid(settings, method)]
    atomic_write_text(settings.exp / "infeasible.json", json.dumps(infeasible, indent=1))
    if "full" in settings.methods:
        experiments += [Experiment(d, "full", "", None, {}, total, lr=lr) for d in settings.domains
                        for lr in lr_grid(settings, "full")]
    return experiments


def experiment_config(settings: Settings, src: Source, e: Experiment) -> dict:
    """The ESPnet config of ``e``: the source model's architecture, then the method's training
    options, with the adapter options as the budget matcher sized them (what plan counted and
    RESULTS.md shows)."""
    source_conf = yaml.safe_load(src.config.read_text())
    conf = {k: v for k, v in source_conf.items() if k in ARCHITECTURE_KEYS}
    method_conf = method_yaml(settings, e.method)
    # model_conf: the method's YAML may change the loss weights; the model's own symbols stay.
    model_conf = {**source_conf.get("model_conf", {}), **method_conf.pop("model_conf", {})}
    method_conf.pop("adapter_conf", None)
    method_conf.pop("lr_grid", None)
    conf.update(method_conf, model_conf=model_conf, seed=method_conf.get("seed", 0) + e.seed,
                optim_conf={**method_conf.get("optim_conf", {}), "lr": e.lr})
    adapter_conf = dict(e.settings)
    if e.method != "full":
        adapter_conf["target_modules"] = e.layers or list(settings.targets)
    conf.update(use_adapter=True, adapter=e.method, adapter_conf=adapter_conf)
    return conf


def write_plan(settings: Settings, experiments: list[Experiment]) -> None:
    settings.exp.mkdir(parents=True, exist_ok=True)
    atomic_write_text(settings.exp / "plan.json", json.dumps([e.record() for e in experiments], indent=1))


def adapt(settings: Settings) -> None:
    """Stage 5: train every planned experiment from the source model, each as its own job."""
    src = source_model(settings)
    experiments = plan(settings, src)
    write_plan(settings, experiments)
    run_jobs(settings, "adapt", training_jobs(settings, src, experiments))


def training_jobs(settings: Settings, src: Source, experiments: list[Experiment]):
    """A training job per experiment, its config and record written first (unless it is done)."""
    pretrained = model_file(source_dir(settings))
    jobs = []
    for i, e in enumerate(experiments, 1):
        out = settings.exp / e.name
        if not (out / ".done").exists():
            log(f"[{i}/{len(experiments)}] {e.name}: {e.method} {e.summary} ({e.trainable:,} trainable), "
                f"lr {e.lr:g}, seed {e.seed}")
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "adapt.yaml", yaml.safe_dump(experiment_config(settings, src, e), sort_keys=False))
            atomic_write_text(out / "experiment.json", json.dumps(e.record(), indent=1))
        jobs.append(training_job(settings, e.name, src, out / "adapt.yaml", out, set_name(settings.adapt_set, e.domain),
                                 set_name(settings.dev_set, e.domain), init_param=pretrained))
    return jobs
