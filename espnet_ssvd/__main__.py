"""Command line: ``python -m espnet_ssvd {budget,merge} ...`` (also installed as ``espnet-ssvd``)."""

import argparse
import sys

from .adapters import AdapterError


def _budget(args: argparse.Namespace) -> None:
    from .budget import budget_table, format_table
    from .espnet_model import build_model_from_config

    model = build_model_from_config(args.config, args.task)
    total = sum(p.numel() for p in model.parameters())
    rows = budget_table(model, args.targets, args.budget, args.methods, args.outer_fractions)
    print(f"model: {args.config} ({total:,} parameters), targets: {args.targets}, budget: {args.budget} "
          f"= {rows[0].budget:,} parameters\n")
    print(format_table(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m espnet_ssvd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("budget", help="hyperparameters of each method at a matched parameter budget")
    p.add_argument("--config", required=True, help="ESPnet training YAML (or an experiment's config.yaml)")
    p.add_argument("--task", default="asr", choices=["asr", "s2t"])
    p.add_argument("--budget", required=True, help="'1%%' of the model, a fraction 0.01, or a count ('250k')")
    p.add_argument("--targets", nargs="+", default=["all_linear"], help="module-name suffixes or presets")
    p.add_argument("--methods", nargs="+", default=["lora", "dora", "pissa", "ssvd", "ssvd_outer"])
    p.add_argument("--outer_fractions", nargs="+", type=float, default=[0.5])
    p.set_defaults(func=_budget)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except AdapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
