"""The options, checked before any work: every stage runs this first, and adapt.sh before stage 1,
so a typo fails in seconds rather than as a missing row hours into a run."""

import yaml

from ..adapter_conf import split_adapter_conf
from ..adapters import ADAPTERS, AdapterError, get_method
from ..budget import size_options
from ..whisper.checkpoints import is_whisper
from .settings import Settings, lr_override, slurm_parameters

# adapter_conf keys of the plugin that an adapt_<method>.yaml must leave alone, and why.
RECIPE_SET = {
    "target_modules": "--targets picks the layers",
    "base_fingerprint": "the plugin records it from the loaded weights",
    "trainable_params": "it would train more than the matched budget",
}


def method_yaml(settings: Settings, method: str) -> dict:
    """The training options of ``method``: ``adapt_<method>.yaml`` in --adapt_config_dir."""
    return yaml.safe_load((settings.adapt_config_dir / f"adapt_{method}.yaml").read_text()) or {}


def lr_grid(settings: Settings, method: str) -> tuple[float, ...]:
    """The learning rates ``method`` is trained with: --lrs, or its YAML's ``lr_grid[--sweep]``, or
    (``--sweep none``) its YAML's ``optim_conf.lr``."""
    override = lr_override(settings.lrs, settings.methods)
    if method in override:
        return override[method]
    conf, path = method_yaml(settings, method), settings.adapt_config_dir / f"adapt_{method}.yaml"
    if settings.sweep == "none":
        lr = (conf.get("optim_conf") or {}).get("lr")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
            raise AdapterError(f"{path}: --sweep none trains at optim_conf.lr, which is {lr!r}; set a positive "
                               "optim_conf: {lr: ...}, or give --lrs")
        return (float(lr),)
    grids = conf.get("lr_grid")
    grid = grids.get(settings.sweep) if isinstance(grids, dict) else None
    if (not isinstance(grid, list) or not grid
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 for v in grid)):
        raise AdapterError(f"{path}: --sweep {settings.sweep} needs lr_grid: {{{settings.sweep}: [lr, ...]}} of positive "
                           f"learning rates, found {grids!r} (e.g. lr_grid: {{minimal: [3.0e-4, 1.0e-3], full: "
                           "[1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3]}); or give --lrs, or --sweep none for optim_conf.lr")
    return tuple(sorted({float(v) for v in grid}))


def matched_confs(settings: Settings, method: str) -> list[tuple[float | None, dict]]:
    """(outer fraction, options the budget matcher sizes) of each run of ``method``: the method
    options of its YAML's adapter_conf, for ssvd_outer once per --outer_fractions."""
    conf = split_adapter_conf(method_yaml(settings, method).get("adapter_conf"))[0]
    if method != "ssvd_outer":
        return [(None, conf)]
    return [(f, {**conf, "outer_fraction": f}) for f in settings.outer_fractions]


def check(settings: Settings) -> None:
    """Refuse what would fail, or drop out as a "budget out of reach" row, hours into a run:
    unknown methods, methods without a size knob for the budget matcher (full needs none) or
    without an adapt_<method>.yaml, YAML adapter options that are invalid or that the recipe sets
    itself, a learning-rate grid that is missing, and a Slurm configuration it cannot use. (Budgets and outer fractions are
    checked when the settings are read.)"""
    if settings.cluster == "slurm":
        slurm_parameters(settings)
    if is_whisper(settings.model) and settings.decode_method == "ctc_greedy":
        raise AdapterError(f"--model {settings.model}: Whisper has no CTC branch; use --decode_method beam "
                           "(openai-whisper's beam search, --beam_size 1 for greedy)")
    config_dir = settings.adapt_config_dir
    have = {p.name.removeprefix("adapt_").removesuffix(".yaml") for p in config_dir.glob("adapt_*.yaml")}
    problems = []
    for method in settings.methods:
        try:
            spec = get_method(method)
        except AdapterError:
            problems.append(f"unknown method {method!r}")
            continue
        if spec.budget_knob is None and method != "full":
            problems.append(f"{method!r} has no size knob for the budget matcher")
        elif method not in have:
            problems.append(f"{method!r} has no {config_dir / f'adapt_{method}.yaml'}")
    if problems or not settings.methods:
        available = [m for m, spec in ADAPTERS.items() if (spec.budget_knob or m == "full") and m in have]
        raise AdapterError(f"--methods {' '.join(settings.methods)!r}: {'; '.join(problems) or 'no method given'}. "
                           f"Available: {' '.join(available)} (a method needs a size knob, full needs none, "
                           f"and an adapt_<method>.yaml in {config_dir})")
    for method in settings.methods:
        spec, path = ADAPTERS[method], config_dir / f"adapt_{method}.yaml"
        recipe_set = {**RECIPE_SET, **{k: "the budget matcher sets the size" for k in size_options(spec.budget_knob)}}
        adapter_conf = method_yaml(settings, method).get("adapter_conf") or {}
        fixed = [f"{k} ({recipe_set[k]})" for k in adapter_conf if k in recipe_set]
        if fixed:
            raise AdapterError(f"{path}: remove {', '.join(fixed)} from adapter_conf")
        lr_grid(settings, method)
        for _, conf in matched_confs(settings, method):
            try:
                spec.make_config({**conf, **({spec.budget_knob: 1} if spec.budget_knob else {})})
            except AdapterError as err:
                raise AdapterError(f"{path}: adapter_conf: {err}") from None
