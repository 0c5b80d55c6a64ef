"""Adapter files rebuild exactly the adapted model they were written from, or refuse: the basis is
pinned (signs, singular values, or the factors themselves), the data checksummed, writes atomic."""

import copy
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import svd as svd_module
from espnet_ssvd.checkpoint import FORMAT, base_fingerprint, load_adapter, save_adapter


def base_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 48), nn.GELU(), nn.Linear(48, 24))


def trained(method, conf):
    """(pristine base, adapted model with moved adapter parameters, its adapter file's arguments)."""
    base = base_model()
    model = copy.deepcopy(base)
    fingerprint = base_fingerprint(model)
    attach_adapter(model, method, ["0", "2"], conf)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return base, model, (method, dict(conf), fingerprint)


def save(model, path, args, **kwargs):
    method, conf, fingerprint = args
    return save_adapter(model, path, method, conf, fingerprint, **kwargs)


X = torch.randn(7, 32)


@pytest.mark.parametrize("method, conf", [
    ("ssvd", {"k": 6, "svd_method": "randomized", "svd_niter": 1}),
    ("ssvd_outer", {"k": 6, "svd_method": "randomized", "svd_niter": 1}),
    ("pissa", {"r": 3}),
    ("pissa", {"r": 3, "niter": 1}),
    ("spectral_lora", {"p": 6, "r": 2, "svd_method": "randomized", "svd_niter": 1}),
])
def test_bases_that_cannot_be_recomputed_are_stored_and_reload_exactly(method, conf, tmp_path):
    base, model, args = trained(method, conf)
    path = save(model, tmp_path / "a.safetensors", args)
    torch.manual_seed(123)  # another random draw: a recomputed randomised SVD would differ
    loaded = copy.deepcopy(base)
    load_adapter(loaded, path)
    torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=1e-6)


def flipped_svd(weight, m, *args, **kwargs):
    """The same SVD with the first singular pair's sign flipped, as another machine may return it."""
    svd = ORIGINAL_TOP_SVD(weight, m, *args, **kwargs)
    svd.U[:, 0] *= -1
    svd.V[:, 0] *= -1
    return svd


def rotated_svd(weight, m, *args, **kwargs):
    """A basis rotated inside the top-2 subspace: what a near-tie of s_0 and s_1 can give."""
    svd = ORIGINAL_TOP_SVD(weight, m, *args, **kwargs)
    c, s = 0.6, 0.8
    for f in (svd.U, svd.V):
        a, b = f[:, 0].clone(), f[:, 1].clone()
        f[:, 0], f[:, 1] = c * a + s * b, -s * a + c * b
    return svd


ORIGINAL_TOP_SVD = svd_module.top_svd


@pytest.mark.parametrize("method", ["ssvd", "ssvd_outer", "spectral_lora"])
def test_a_sign_flip_of_the_recomputed_svd_is_realigned(method, tmp_path, monkeypatch):
    conf = {"p": 6, "r": 2} if method == "spectral_lora" else {"k": 6}
    base, model, args = trained(method, conf)
    path = save(model, tmp_path / "a.safetensors", args)
    monkeypatch.setattr(svd_module, "top_svd", flipped_svd)
    loaded = copy.deepcopy(base)
    load_adapter(loaded, path)
    torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=1e-6)
    # Without the stored pivots, the trained parameters on the flipped basis give another model:
    unpinned = copy.deepcopy(base)
    attach_adapter(unpinned, method, ["0", "2"], conf)
    trained_params = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in unpinned.named_parameters():
            if p.requires_grad:
                p.copy_(trained_params[name])
    assert (unpinned(X) - model(X)).abs().max() > 1e-3


@pytest.mark.parametrize("method", ["ssvd", "ssvd_outer"])
def test_a_different_recomputed_basis_is_refused_unless_the_factors_are_stored(method, tmp_path, monkeypatch):
    base, model, args = trained(method, {"k": 6})
    pinned = save(model, tmp_path / "pinned.safetensors", args)
    stored = save(model, tmp_path / "stored.safetensors", args, store_factors=True)
    monkeypatch.setattr(svd_module, "top_svd", rotated_svd)
    with pytest.raises(AdapterError, match=r"layer 0: the SVD of this model's weight differs from the basis the "
                                           r"adapter was trained on .*--store_basis factors"):
        load_adapter(copy.deepcopy(base), pinned)
    loaded = copy.deepcopy(base)
    load_adapter(loaded, stored)
    torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=1e-6)
    assert stored.stat().st_size > pinned.stat().st_size


def test_flipped_bytes_in_tensor_data_are_caught(tmp_path):
    base, model, args = trained("ssvd", {"k": 6})
    path = save(model, tmp_path / "a.safetensors", args)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x40  # inside the last tensor's data: the header stays valid
    path.write_bytes(bytes(data))
    with pytest.raises(AdapterError, match=r"is corrupt: its tensor data do not match the checksum"):
        load_adapter(copy.deepcopy(base), path)


def test_missing_metadata_is_named(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata={"format": FORMAT, "method": "ssvd"})
    with pytest.raises(AdapterError, match=r"lacks metadata config, targets, base_fingerprint, basis, checksum"):
        load_adapter(base_model(), path)


def test_an_old_format_file_says_how_to_redo_it(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata={"format": "espnet_ssvd.adapter.v1"})
    with pytest.raises(AdapterError, match=r"older espnet_ssvd .* export it again"):
        load_adapter(base_model(), path)


def test_the_fingerprint_covers_weights_outside_the_adapted_layers(tmp_path):
    base, model, args = trained("ssvd", {"k": 6})
    path = save(model, tmp_path / "a.safetensors", args)
    other = copy.deepcopy(base)
    with torch.no_grad():  # a bias is no adapted weight, but the adapted output depends on it
        other[2].bias.add_(1e-3)
    with pytest.raises(AdapterError, match=r"was trained on base weights with fingerprint [0-9a-f]{16}"):
        load_adapter(other, path)


KILLED_EXPORT = """
import os, signal, sys, torch
from torch import nn
import espnet_ssvd.checkpoint as ckpt
from espnet_ssvd import attach_adapter

def dying_save_file(tensors, filename, metadata=None):
    with open(filename, "wb") as f:  # half a file, then the process is killed
        f.write(b"\\x10" * 64)
        f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(32, 48), nn.GELU(), nn.Linear(48, 24))
attach_adapter(model, "ssvd", ["0", "2"], {"k": 6})
ckpt.save_file = dying_save_file
ckpt.save_adapter(model, sys.argv[1], "ssvd", {"k": 6}, "0" * 16)
"""


def test_a_kill_during_export_leaves_the_previous_file_intact(tmp_path):
    base, model, args = trained("ssvd", {"k": 6})
    path = save(model, tmp_path / "a.safetensors", args)
    before = path.read_bytes()
    run = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(path)], capture_output=True, text=True)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert path.read_bytes() == before
    loaded = copy.deepcopy(base)
    load_adapter(loaded, path)
    torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=1e-6)
    # The half-written bytes went to a hidden temporary, never to a name a loader would pick up.
    assert [n for n in os.listdir(tmp_path) if not n.startswith(".")] == ["a.safetensors"]


@pytest.mark.parametrize("method, conf", [
    ("lora", {"r": 2, "r_pattern": {"2": 5}}),
    ("pissa", {"r": 3, "r_pattern": {"0": 1}}),
    ("ssvd_outer", {"k": 6, "outer_fraction": 0.5, "k_pattern": {"0": 10}}),
])
def test_per_layer_sizes_round_trip_through_an_adapter_file(method, conf, tmp_path):
    def sizes(summary):
        return [{k: v for k, v in layer.settings.items() if k in ("r", "lora_alpha", "k_in", "k_out", "k_s")}
                for layer in summary.layers]

    base, model, args = trained(method, conf)
    written = sizes(model.espnet_ssvd_summary)
    assert written[0] != written[1]
    path = save(model, tmp_path / "a.safetensors", args)
    loaded = copy.deepcopy(base)
    assert sizes(load_adapter(loaded, path)) == written
    torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=1e-6)
