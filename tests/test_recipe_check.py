"""The recipe's option check (before any work) and budget matching with the method YAMLs' adapter_conf."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from espnet_ssvd.recipe import cli, plan as plan_stage
from espnet_ssvd.recipe.check import check
from espnet_ssvd.recipe.settings import parse
from espnet_ssvd.fileio import atomic_path, atomic_write_text

from espnet_data import make_experiment
from recipe_copy import copy_recipe, recipe_env

ROOT = Path(__file__).resolve().parents[1]
SYNTH_CONF = ROOT / "egs2" / "synth_shift" / "asr1" / "conf" / "tuning"
AVAILABLE = "Available: ssvd ssvd_outer lora dora pissa full"


def test_run_sh_with_an_unknown_method_stops_before_stage_1(tmp_path):
    asr1 = copy_recipe(tmp_path, "synth_shift")
    env = recipe_env()
    proc = subprocess.run(["./run.sh", "--fast", "true", "--python", sys.executable, "--methods", "lora lroa"],
                          cwd=asr1, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "error: --methods 'lora lroa': unknown method 'lroa'" in proc.stderr and AVAILABLE in proc.stderr
    assert "stage 1" not in proc.stdout and not (asr1 / "data").exists() and not (asr1 / "exp").exists()


@pytest.mark.parametrize("methods,problem", [
    ("lroa", "unknown method 'lroa'"),
    ("ssvd spectral_lora", f"'spectral_lora' has no {SYNTH_CONF}/adapt_spectral_lora.yaml"),
    ("psoft full", "'psoft' has no size knob for the budget matcher"),  # a PEFT name get_method accepts
])
@pytest.mark.parametrize("stage", ["check", "adapt"])
def test_every_stage_refuses_methods_it_cannot_run(tmp_path, capsys, methods, problem, stage):
    argv = [stage, "--methods", methods, "--adapt_config_dir", str(SYNTH_CONF), "--exp", str(tmp_path / "exp")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert problem in err and AVAILABLE in err
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("adapter_conf,problem", [
    ({"k": 8}, "remove k (the budget matcher sets the size)"),
    ({"rotation_ratio": 0.2}, "remove rotation_ratio (the budget matcher sets the size)"),
    ({"target_modules": ["linear_q"]}, "remove target_modules (--targets picks the layers)"),
    ({"trainable_params": ["ctc"]}, "remove trainable_params (it would train more than the matched budget)"),
    ({"rotaton_map": "cayley"}, "adapter_conf: unknown option(s) rotaton_map for adapter 'ssvd'"),
])
def test_yaml_adapter_options_the_recipe_would_override_or_cannot_use_are_refused(tmp_path, capsys, adapter_conf,
                                                                                  problem):
    conf_dir = tmp_path / "tuning"
    shutil.copytree(SYNTH_CONF, conf_dir)
    config = yaml.safe_load((conf_dir / "adapt_ssvd.yaml").read_text())
    (conf_dir / "adapt_ssvd.yaml").write_text(yaml.safe_dump({**config, "adapter_conf": adapter_conf}))
    assert cli.main(["check", "--methods", "lora ssvd", "--adapt_config_dir", str(conf_dir)]) == 2
    assert f"error: {conf_dir / 'adapt_ssvd.yaml'}: {problem}" in capsys.readouterr().err


def test_bad_budget_or_outer_fraction_is_refused(capsys):
    assert cli.main(["check", "--adapt_config_dir", str(SYNTH_CONF), "--budgets", "1% lots"]) == 2
    assert "cannot read budget 'lots'" in capsys.readouterr().err
    assert cli.main(["check", "--adapt_config_dir", str(SYNTH_CONF), "--outer_fractions", "0 half"]) == 2
    assert "cannot read --outer_fractions '0 half'" in capsys.readouterr().err
    assert cli.main(["check", "--adapt_config_dir", str(SYNTH_CONF)]) == 0


def test_plan_matches_budgets_with_the_yaml_adapter_conf_and_adapt_trains_that_count(tmp_path, monkeypatch):
    """k_s (SSVD-O) and p (spectral LoRA) set in the YAMLs change the count: what adapt.yaml
    attaches is exactly what plan counted (and RESULTS.md shows)."""
    from espnet2.tasks.asr import ASRTask

    from espnet_ssvd.adapter_conf import attach_from_conf

    tiny = make_experiment(tmp_path / "tiny", n_utts=1)
    source = tmp_path / "exp" / "source"
    source.mkdir(parents=True)
    parsed = ASRTask.get_parser().parse_args(["--config", str(tiny["config"]), "--token_list", str(tiny["tokens"]),
                                              "--token_type", "char"])
    (source / "config.yaml").write_text(yaml.safe_dump(vars(parsed)))
    (source / "latest.pth").touch()  # adapt's --init_param; the training is replaced below
    conf_dir = tmp_path / "tuning"
    shutil.copytree(SYNTH_CONF, conf_dir)
    for method, options in (("ssvd_outer", {"rotation_map": "linear", "k_s": 2}), ("spectral_lora", {"p": 4})):
        config = yaml.safe_load((conf_dir / "adapt_ssvd_outer.yaml").read_text())
        (conf_dir / f"adapt_{method}.yaml").write_text(yaml.safe_dump({**config, "adapter_conf": options}))
    trained = []
    monkeypatch.setattr(plan_stage, "run_jobs", lambda settings, stage, jobs: trained.extend(jobs))
    _, settings = parse(["adapt", "--exp", str(tmp_path / "exp"), "--adapt_config_dir", str(conf_dir),
                         "--methods", "ssvd_outer spectral_lora", "--domains", "child", "--budgets", "5%",
                         "--budget_tolerance", "0.5", "--sweep", "none"], list(cli.STAGES), "")
    check(settings)
    plan_stage.adapt(settings)

    plan = json.loads((tmp_path / "exp" / "plan.json").read_text())
    assert [e["method"] for e in plan] == ["ssvd_outer", "spectral_lora"] and len(trained) == 2
    assert plan[0]["settings"]["k_s"] == 2 and plan[1]["settings"]["p"] == 4
    for e in plan:
        config = yaml.safe_load((tmp_path / "exp" / e["name"] / "adapt.yaml").read_text())
        assert config["adapter"] == e["method"]
        assert config["adapter_conf"] == {**e["settings"], "target_modules": e["layers"] or ["all_linear"]}
        model, _ = ASRTask.build_model_from_file(source / "config.yaml", None, "cpu")
        summary = attach_from_conf(model, e["method"], config["adapter_conf"])
        assert summary.trainable == e["trainable"]
        knob = {"ssvd_outer": "k_s", "spectral_lora": "p"}[e["method"]]
        assert {layer.settings[knob] for layer in summary.layers} == {e["settings"][knob]}


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    path = tmp_path / "plan.json"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["plan.json"]
    with atomic_path(tmp_path / "plot.png") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and not tmp.exists()
        tmp.write_bytes(b"png")
    assert (tmp_path / "plot.png").read_bytes() == b"png" and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("conf,problem", [
    (None, "--cluster slurm needs a YAML mapping of Slurm settings in {path}"),
    ({"partition": "gpu", "gpus": 4}, "{path}: unknown Slurm settings gpus; known: account, additional_parameters"),
])
def test_a_slurm_configuration_it_cannot_use_is_refused_before_any_work(tmp_path, capsys, conf, problem):
    path = tmp_path / "slurm.yaml"
    if conf is not None:
        path.write_text(yaml.safe_dump(conf))
    argv = ["adapt", "--cluster", "slurm", "--slurm_conf", str(path), "--adapt_config_dir", str(SYNTH_CONF),
            "--exp", str(tmp_path / "exp")]
    assert cli.main(argv) == 2
    assert problem.format(path=path) in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()
    assert cli.main(["check", "--cluster", "cloud"]) == 2
    assert "--cluster 'cloud': choose one of local, slurm" in capsys.readouterr().err
