"""Budget matching: the hyperparameters that give each method the same number of trainable parameters.

Each method in the registry names one integer knob (LoRA/DoRA/PiSSA ``r``, SSVD / SSVD-O ``k``,
spectral LoRA ``r``) and a closed-form parameter count; the matcher searches the knob so the
count over the target layers is as close to the budget as it can be, and refuses a budget it
cannot meet within the tolerance. Where the knob's grid is too coarse for the tolerance (a small
model, where rank 1 over every layer is already over the budget), the method gets the smallest
knob over the budget on an evenly spaced subset of the target layers, which still spans the
model's whole depth.
"""

import re
from dataclasses import dataclass
from typing import Any

from torch import nn

from .adapters import ADAPTERS, AdapterError, get_method, match_targets

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


def layer_shapes(model: nn.Module, names: list[str]) -> list[tuple[int, int]]:
    """Weight shapes of the already matched target modules ``names``."""
    modules = dict(model.named_modules())
    shapes = []
    for name in names:
        module = modules[name]
        if not isinstance(module, nn.Linear):
            raise AdapterError(f"budget matching counts nn.Linear targets, but {name!r} is a {type(module).__name__}")
        shapes.append(tuple(module.weight.shape))
    return shapes


@dataclass
class BudgetRow:
    method: str
    settings: dict[str, Any]
    trainable: int
    budget: int
    layers: tuple[int, ...] | None = None  # indices into the target layers; None: all of them
    n_targets: int = 0

    @property
    def deviation(self) -> float:
        return (self.trainable - self.budget) / self.budget

    def targets(self, names: list[str]) -> list[str]:
        """The target module names this row adapts, out of all ``names`` it was matched on."""
        return list(names) if self.layers is None else [names[i] for i in self.layers]

    def describe(self) -> str:
        text = ", ".join(f"{k}={v}" for k, v in self.settings.items()) or "-"
        if self.layers is not None:
            text += f" on {len(self.layers)} of {self.n_targets} layers"
        return text


def spread(n: int, total: int) -> tuple[int, ...]:
    """``n`` indices spaced evenly over ``range(total)``, first and last included."""
    if n == 1:
        return (total // 2,)
    return tuple(round(i * (total - 1) / (n - 1)) for i in range(n))


def size_options(knob: str | None) -> tuple[str, ...]:
    """The options the matcher sets: its knob, and rotation_ratio, which sizes SSVD layers in the knob's place."""
    return (knob, "rotation_ratio") if knob else ()


def match_budget(
    method: str,
    shapes: list[tuple[int, int]],
    budget: int,
    conf: dict[str, Any] | None = None,
    tolerance: float = TOLERANCE,
) -> BudgetRow:
    """The knob value for ``method`` whose parameter count is nearest ``budget`` (and, where the knob's
    grid is too coarse, the evenly spaced subset of the layers ``shapes`` describes)."""
    spec = get_method(method)
    if spec.budget_knob is None:
        sized = ", ".join(n for n, m in ADAPTERS.items() if m.budget_knob)
        raise AdapterError(f"adapter {method!r} has no size knob to match a budget with; choose one of {sized}")
    knob = spec.budget_knob
    base = {k: v for k, v in (conf or {}).items() if k not in size_options(knob)}
    rank = min(min(s) for s in shapes)
    high = min(rank, base.get("p", rank)) if method == "spectral_lora" else rank

    def count(value: int, layers: tuple[int, ...] | None = None) -> int:
        on = shapes if layers is None else [shapes[i] for i in layers]
        return spec.count(on, spec.make_config({**base, knob: value}))

    lo, hi = 1, high
    while lo < hi:  # smallest value reaching the budget (counts grow with the knob)
        mid = (lo + hi) // 2
        if count(mid) >= budget:
            hi = mid
        else:
            lo = mid + 1
    best = min({lo, max(1, lo - 1)}, key=lambda v: abs(count(v) - budget))
    row = BudgetRow(method, {**base, knob: best}, count(best), budget, None, len(shapes))
    if abs(row.deviation) > tolerance and count(lo) > budget:
        subsets = [spread(n, len(shapes)) for n in range(1, len(shapes))]
        layers = min(subsets, key=lambda ix: abs(count(lo, ix) - budget))
        row = BudgetRow(method, {**base, knob: lo}, count(lo, layers), budget, layers, len(shapes))
    if abs(row.deviation) > tolerance:
        raise AdapterError(
            f"budget of {budget:,} parameters cannot be met by {method} within {tolerance:.0%}: the nearest, "
            f"{row.describe()}, gives {row.trainable:,} ({row.deviation:+.1%}); over these {len(shapes)} layers "
            f"{method} spans {count(1):,} ({knob}=1) to {count(high):,} ({knob}={high}). "
            "Choose a budget in that range, or change the targets"
        )
    return row


def budget_table(
    model: nn.Module,
    targets,
    budget: str | int | float,
    methods=DEFAULT_METHODS,
    outer_fractions=(0.5,),
    confs: dict[str, dict[str, Any]] | None = None,
    tolerance: float = TOLERANCE,
) -> list[BudgetRow]:
    """One matched row per method (and per outer_fraction for ssvd_outer)."""
    total = sum(p.numel() for p in model.parameters())
    count = parse_budget(budget, total)
    shapes = target_shapes(model, targets)
    rows = []
    for method in methods:
        conf = dict((confs or {}).get(method, {}))
        if method == "full":
            rows.append(BudgetRow("full", {}, total, count))
            continue
        for f in outer_fractions if method == "ssvd_outer" else [None]:
            extra = {} if f is None else {"outer_fraction": f}
            rows.append(match_budget(method, shapes, count, {**conf, **extra}, tolerance))
    return rows


def format_table(rows: list[BudgetRow]) -> str:
    lines = ["| method | settings | trainable params | deviation from budget |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.method} | {row.describe()} | {row.trainable:,} | {100 * row.deviation:+.2f} % |")
    return "\n".join(lines)
