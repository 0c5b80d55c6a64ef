"""Budget matching: the hyperparameters that give each method the same number of trainable parameters.

Each method in the registry names one integer knob (LoRA/DoRA/PiSSA ``r``, SSVD / SSVD-O ``k``,
spectral LoRA ``r``), a per-layer table of it (``r_pattern`` / ``k_pattern``) and a closed-form
parameter count; the matcher refuses a budget it cannot meet within the tolerance.

``coverage="full"`` (the default) adapts every target layer: each layer's size is capped at its
rank (spectral LoRA: also at p), all layers get a base value v (or their cap) and an evenly
spaced set of the layers that can still grow gets v + 1, as many as bring the count nearest the
budget. So every method is compared on the same layers, and one narrow layer (a 31-token output
layer) caps only itself. Where even size 1 on every layer is over the budget beyond the
tolerance (a small model), the matcher falls back to ``coverage="subset"``: the smallest knob
over the budget on an evenly spaced subset of the targets, which still spans the model's whole
depth (``BudgetRow.fallback`` says so).
"""

import re
from dataclasses import dataclass
from typing import Any

from torch import nn

from .adapters import ADAPTERS, AdapterError, get_method, match_targets
from .adapters.base import is_ssl_layer, ssl_layer_width

DEFAULT_METHODS = ("lora", "dora", "pissa", "ssvd", "ssvd_outer")
TOLERANCE = 0.02


def parse_budget(budget: str | int | float, total: int) -> int:
    """'1%' or 0.01 -> that fraction of ``total``; 250000, '250k', '1.5M' -> absolute counts."""
    text = str(budget).strip()
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e-?\d+)?)\s*(%|k|K|m|M)?", text)
    if not m:
        raise AdapterError(f"cannot read budget {budget!r}: give a percentage ('1%'), a fraction (0.01) or a count (250000, '250k', '1.5M')")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "%":
        count = value / 100 * total
    elif unit in ("k", "K"):
        count = value * 1e3
    elif unit in ("m", "M"):
        count = value * 1e6
    else:
        count = value * total if value < 1 else value
    if count < 1:
        raise AdapterError(f"budget {budget!r} is less than one parameter")
    return round(count)


def target_shapes(model: nn.Module, targets) -> list[tuple[int, int]]:
    return layer_shapes(model, match_targets(model, targets))


def layer_shapes(model: nn.Module, names: list[str], whole_layers: bool = False) -> list[tuple[int, int]]:
    """Weight shapes of the already matched target modules ``names``; ``whole_layers`` (unipet's
    targets): (d, d) for an SSL transformer layer of width d."""
    modules = dict(model.named_modules())
    shapes = []
    for name in names:
        module = modules[name]
        if whole_layers and is_ssl_layer(module):
            shapes.append((ssl_layer_width(module),) * 2)
            continue
        if not isinstance(module, nn.Linear):
            raise AdapterError(f"budget matching counts nn.Linear targets, but {name!r} is a {type(module).__name__}")
        shapes.append(tuple(module.weight.shape))
    return shapes


def method_targets(model: nn.Module, method: str, names: list[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """The modules ``method`` adapts for the matched targets ``names`` and their shapes: the targets
    themselves, or for unipet the transformer layers holding them (so one target list compares it
    with LoRA / SSVD on the same layers)."""
    spec = get_method(method)
    if spec.layers is None:
        return names, layer_shapes(model, names)
    names = spec.layers(model, names)
    return names, layer_shapes(model, names, whole_layers=True)


COVERAGES = ("full", "subset")


@dataclass
class BudgetRow:
    method: str
    settings: dict[str, Any]
    trainable: int
    budget: int
    layers: tuple[int, ...] | None = None  # subset coverage: indices into the targets; None: all of them
    n_targets: int = 0
    knob: str | None = None  # the size option the matcher set (settings[knob], settings[f"{knob}_pattern"])
    fallback: bool = False  # full coverage was asked for, but even size 1 on every layer is over the budget

    @property
    def deviation(self) -> float:
        return (self.trainable - self.budget) / self.budget

    def targets(self, names: list[str]) -> list[str]:
        """The target module names this row adapts, out of all ``names`` it was matched on."""
        return list(names) if self.layers is None else [names[i] for i in self.layers]

    def describe(self) -> str:
        """``r=5/6 on 96/96 layers`` (every layer, a mix of sizes), ``k=8 on 12/12 layers``, ``r=1 on 37
        of 44 layers`` (a subset), followed by the other settings."""
        others = [f"{k}={v}" for k, v in self.settings.items() if k not in (self.knob, f"{self.knob}_pattern")]
        if self.knob not in self.settings:
            return ", ".join(others) or "-"
        sizes = {self.settings[self.knob], *(self.settings.get(f"{self.knob}_pattern") or {}).values()}
        text = f"{self.knob}={'/'.join(str(v) for v in sorted(sizes))}"
        if self.layers is not None:
            text += f" on {len(self.layers)} of {self.n_targets} layers"
        elif self.n_targets:
            text += f" on {self.n_targets}/{self.n_targets} layers"
        return ", ".join([text, *others])


def spread(n: int, total: int) -> tuple[int, ...]:
    """``n`` indices spaced evenly over ``range(total)``, first and last included."""
    if n == 0:
        return ()
    if n == 1:
        return (total // 2,)
    return tuple(round(i * (total - 1) / (n - 1)) for i in range(n))


def evenly_spaced(total: int):
    """Every evenly spaced choice of indices of ``range(total)``: for each count n, ``spread(n, total)``
    and the same comb at each phase, indices n apart (n of 0 .. total)."""
    yield ()
    for n in range(1, total + 1):
        yield spread(n, total)
        gap = -(-total // n)
        for phase in range(gap):
            yield tuple((j * total // n + phase) % total for j in range(n))


def size_options(knob: str | None) -> tuple[str, ...]:
    """The options the matcher sets: its knob, the knob's per-layer table, and rotation_ratio,
    which sizes SSVD layers in the knob's place."""
    return (knob, f"{knob}_pattern", "rotation_ratio") if knob else ()


def match_budget(
    method: str,
    shapes: list[tuple[int, int]],
    budget: int,
    conf: dict[str, Any] | None = None,
    tolerance: float = TOLERANCE,
    *,
    names: list[str] | None = None,
    coverage: str = "full",
) -> BudgetRow:
    """The sizes for ``method`` whose parameter count over the target layers ``shapes`` is nearest
    ``budget``. ``names`` are the target-module names aligned with ``shapes``: a full-coverage match
    that mixes sizes names its layers in ``{knob}_pattern``. ``coverage="subset"``: one knob value on
    an evenly spaced subset of the layers (where the knob's grid is too coarse for the budget)."""
    spec = get_method(method)
    if spec.budget_knob is None:
        sized = ", ".join(n for n, m in ADAPTERS.items() if m.budget_knob)
        raise AdapterError(f"adapter {method!r} has no size knob to match a budget with; choose one of {sized}")
    if coverage not in COVERAGES:
        raise AdapterError(f"unknown coverage {coverage!r}; choose one of {', '.join(COVERAGES)}")
    if names is not None and len(names) != len(shapes):
        raise AdapterError(f"{len(names)} target names for {len(shapes)} target shapes: give one name per shape")
    if not shapes:
        raise AdapterError("no target layers to match a budget on")
    knob = spec.budget_knob
    base = {k: v for k, v in (conf or {}).items() if k not in size_options(knob)}
    configs: dict[int, Any] = {}

    def config(value: int):
        if value not in configs:
            configs[value] = spec.make_config({**base, knob: value})
        return configs[value]

    def layer_count(i: int, value: int) -> int:
        return spec.count([("", shapes[i])], config(value))

    def count(value: int, layers: tuple[int, ...] | None = None) -> int:
        return sum(layer_count(i, value) for i in (range(len(shapes)) if layers is None else layers))

    caps = [min(shape) for shape in shapes]
    if method == "spectral_lora":
        caps = [min(cap, config(1).p) for cap in caps]
    row = None
    if coverage == "full":
        row = _match_full(method, knob, base, caps, layer_count, budget, names)
        if row.deviation > tolerance and row.settings[knob] == 1 and not row.settings.get(f"{knob}_pattern"):
            row = None  # size 1 everywhere is over the budget: fall back to a subset of the layers
    if row is None:
        row = _match_subset(method, knob, base, min(caps), count, budget, len(shapes), tolerance)
        row.fallback = coverage == "full"
    if abs(row.deviation) > tolerance:
        high = max(caps) if row.layers is None and coverage == "full" else min(caps)
        at_high = sum(layer_count(i, min(high, cap)) for i, cap in enumerate(caps))
        raise AdapterError(
            f"budget of {budget:,} parameters cannot be met by {method} within {tolerance:.0%}: the nearest, "
            f"{row.describe()}, gives {row.trainable:,} ({row.deviation:+.1%}); over these {len(shapes)} layers "
            f"{method} spans {count(1):,} ({knob}=1) to {at_high:,} ({knob}={high}"
            f"{', each layer capped at its rank' if min(caps) < high else ''}). "
            "Choose a budget in that range, or change the targets"
        )
    return row


def _match_full(method, knob, base, caps, layer_count, budget, names) -> BudgetRow:
    """Every layer at min(v, cap), v the largest base value whose count is within the budget, and
    v + 1 on the evenly spaced layers that can still grow whose count is nearest the budget (of
    every count n, spread(n) and its phases: layers of different shapes differ in what a step
    adds, so the phase sets the count finer than one layer's step)."""
    n_layers = len(caps)

    def total(value: int) -> int:
        return sum(layer_count(i, min(value, cap)) for i, cap in enumerate(caps))

    lo, hi = 1, max(caps)
    while lo < hi:  # largest v with total(v) <= budget (1 when even that is over; counts grow with v)
        mid = (lo + hi + 1) // 2
        if total(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    v = lo
    sizes = [min(v, cap) for cap in caps]
    at_v = total(v)
    growable = [i for i, cap in enumerate(caps) if cap > v] if at_v < budget else []
    gains = [layer_count(i, v + 1) - layer_count(i, v) for i in growable]

    def grown(ix: tuple[int, ...]) -> int:
        return at_v + sum(gains[j] for j in ix)

    chosen = min(evenly_spaced(len(growable)), key=lambda ix: abs(grown(ix) - budget))
    for j in chosen:
        sizes[growable[j]] = v + 1
    n = len(chosen)
    value = v + 1 if growable and n == len(growable) else v
    pattern_ix = [i for i, size in enumerate(sizes) if size != value]
    settings = {**base, knob: value}
    if pattern_ix:
        if names is None:
            raise AdapterError(f"matching {method} over every layer gives them different sizes, named by target "
                               "module: pass the target names (match_budget(..., names=...))")
        settings[f"{knob}_pattern"] = {names[i]: sizes[i] for i in pattern_ix}
    trainable = sum(layer_count(i, size) for i, size in enumerate(sizes))
    return BudgetRow(method, settings, trainable, budget, None, n_layers, knob)


def _match_subset(method, knob, base, high, count, budget, n_layers, tolerance) -> BudgetRow:
    """One knob value (at most ``high``, the smallest layer cap) on all layers, or where its grid is
    too coarse, the smallest value over the budget on the evenly spaced subset nearest the budget."""
    lo, hi = 1, high
    while lo < hi:  # smallest value reaching the budget (counts grow with the knob)
        mid = (lo + hi) // 2
        if count(mid) >= budget:
            hi = mid
        else:
            lo = mid + 1
    best = min({lo, max(1, lo - 1)}, key=lambda v: abs(count(v) - budget))
    row = BudgetRow(method, {**base, knob: best}, count(best), budget, None, n_layers, knob)
    if abs(row.deviation) > tolerance and count(lo) > budget:
        subsets = [spread(n, n_layers) for n in range(1, n_layers)]
        layers = min(subsets, key=lambda ix: abs(count(lo, ix) - budget))
        row = BudgetRow(method, {**base, knob: lo}, count(lo, layers), budget, layers, n_layers, knob)
    return row


def budget_table(
    model: nn.Module,
    targets,
    budget: str | int | float,
    methods=DEFAULT_METHODS,
    outer_fractions=(0.5,),
    confs: dict[str, dict[str, Any]] | None = None,
    tolerance: float = TOLERANCE,
    coverage: str = "full",
) -> list[BudgetRow]:
    """One matched row per method (and per outer_fraction for ssvd_outer)."""
    total = sum(p.numel() for p in model.parameters())
    count = parse_budget(budget, total)
    targets = match_targets(model, targets)
    rows = []
    for method in methods:
        conf = dict((confs or {}).get(method, {}))
        if method == "full":
            rows.append(BudgetRow("full", {}, total, count))
            continue
        names, shapes = method_targets(model, method, targets)
        for f in outer_fractions if method == "ssvd_outer" else [None]:
            extra = {} if f is None else {"outer_fraction": f}
            rows.append(match_budget(method, shapes, count, {**conf, **extra}, tolerance, names=names, coverage=coverage))
    return rows


def format_table(rows: list[BudgetRow]) -> str:
    lines = ["| method | settings | trainable params | deviation from budget |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.method} | {row.describe()} | {row.trainable:,} | {100 * row.deviation:+.2f} % |")
    return "\n".join(lines)
