"""Command line: ``python -m espnet_ssvd {budget,export_adapter,merge} ...`` (also installed as ``espnet-ssvd``)."""

import argparse
import sys

from .adapters import AdapterError, match_targets

# Checked by tasks.task_class (an unknown name is an error there), which imports too much for --help.
TASK_HELP = "ESPnet task: asr, s2t or spk"


def _budget(args: argparse.Namespace) -> None:
    from .budget import budget_table, format_table, method_targets
    from .tasks import build_model_from_config

    model = build_model_from_config(args.config, args.task)
    total = sum(p.numel() for p in model.parameters())
    rows = budget_table(model, args.targets, args.budget, args.methods, args.outer_fractions, coverage=args.coverage)
    print(f"model: {args.config} ({total:,} parameters), targets: {args.targets}, budget: {args.budget} "
          f"= {rows[0].budget:,} parameters\n")
    print(format_table(rows))
    targets = match_targets(model, args.targets)
    for row in (r for r in rows if r.layers is not None):
        why = " (size 1 on every layer is over the budget)" if row.fallback else ""
        names, _ = method_targets(model, row.method, targets)
        print(f"\n{row.method} ({row.describe()}){why}: {' '.join(row.targets(names))}")


def _load_trained(args: argparse.Namespace):
    from .tasks import register_plugin, task_class

    register_plugin()
    model, train_args = task_class(args.task).build_model_from_file(args.config, args.model_file, "cpu")
    return model, train_args


def _export_adapter(args: argparse.Namespace) -> None:
    from .checkpoint import save_adapter

    model, train_args = _load_trained(args)
    if not getattr(train_args, "use_adapter", False):
        raise AdapterError(f"{args.config} trains no adapter (use_adapter is false): nothing to export")
    conf = dict(train_args.adapter_conf or {})
    fingerprint = conf.pop("base_fingerprint", "")
    if not fingerprint:
        raise AdapterError(f"{args.config} records no base_fingerprint in adapter_conf: it was not trained by "
                           "espnet_ssvd.bin.asr_train / s2t_train, so the base the adapter belongs to is unknown")
    path = save_adapter(model, args.out, train_args.adapter, conf, fingerprint,
                        store_factors=args.store_basis == "factors")
    size = path.stat().st_size
    print(f"wrote {path} ({size / 2**20:.2f} MiB, {train_args.adapter}, base fingerprint {fingerprint})")


def _merge(args: argparse.Namespace) -> None:
    from .checkpoint import load_adapter
    from .export import export_merged

    model, train_args = _load_trained(args)
    if args.adapter_file:
        load_adapter(model, args.adapter_file)
    out = export_merged(model, train_args, args.out_dir)
    print(f"wrote {out / 'config.yaml'} and {out / 'model.pth'}: a plain ESPnet model, loadable without espnet_ssvd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m espnet_ssvd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("budget", help="hyperparameters of each method at a matched parameter budget")
    p.add_argument("--config", required=True, help="ESPnet training YAML (or an experiment's config.yaml)")
    p.add_argument("--task", default="asr", help=TASK_HELP)
    p.add_argument("--budget", required=True, help="'1%%' of the model, a fraction 0.01, or a count ('250k')")
    p.add_argument("--targets", nargs="+", default=["all_linear"], help="module-name suffixes or presets")
    p.add_argument("--methods", nargs="+", default=["lora", "dora", "pissa", "ssvd", "ssvd_outer"])
    p.add_argument("--outer_fractions", nargs="+", type=float, default=[0.5])
    p.add_argument("--coverage", choices=["full", "subset"], default="full",
                   help="full: every target layer, sizes mixed per layer (r_pattern / k_pattern) to meet the budget; "
                        "subset: one size on an evenly spaced subset of the layers")
    p.set_defaults(func=_budget)

    for name, func, text in (
        ("export_adapter", _export_adapter, "write the adapter of a trained model as an adapter file"),
        ("merge", _merge, "fold the adapter into the weights and write a plain ESPnet model"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="the experiment's config.yaml")
        p.add_argument("--model_file", required=True, help="its checkpoint, e.g. valid.acc.ave.pth")
        p.add_argument("--task", default="asr", help=TASK_HELP)
        if name == "export_adapter":
            p.add_argument("--out", required=True, help="adapter file to write (.safetensors)")
            p.add_argument("--store_basis", choices=["svd", "factors"], default="svd",
                           help="pin the SVD basis by its singular values and sign pivots (small; checked on "
                                "load), or store the factors themselves (exact anywhere, larger)")
        else:
            p.add_argument("--adapter_file", help="attach this adapter file to the model first")
            p.add_argument("--out_dir", required=True)
        p.set_defaults(func=func)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except AdapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
