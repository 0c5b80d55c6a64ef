"""Spoof detection's pieces with known answers: ASVspoof protocols, the data dir and validation
trials written from one, the class score of an embedding, pooled and per-attack EER, and the
trivial baseline's features."""

import numpy as np
import pytest
import soundfile

from espnet_ssvd.adapters import AdapterError
from espnet_ssvd.spk_recipe.baseline import utterance_features
from espnet_ssvd.spk_recipe.protocol import Entry, read_protocol, write_spoof_dir
from espnet_ssvd.spk_recipe.score import class_scores, spoof_result


def entries() -> list[Entry]:
    return ([Entry("s1", f"b{i}", "-", "bonafide") for i in range(4)]
            + [Entry("s1", f"x{i}", "A01", "spoof") for i in range(2)]
            + [Entry("s2", f"y{i}", "A02", "spoof") for i in range(2)])


def test_protocol_round_trip_and_data_dir(tmp_path):
    wavs = {e.utt: f"/w/{e.utt}.flac" for e in entries()}
    write_spoof_dir(tmp_path / "d", entries(), wavs, trials=10, seed=3)
    d = tmp_path / "d"
    assert read_protocol(d / "protocol") == sorted(entries(), key=lambda e: e.utt)
    assert (d / "spk2utt").read_text() == "bonafide b0 b1 b2 b3\nspoof x0 x1 y0 y1\n"
    assert "x1 spoof\n" in (d / "utt2spk").read_text()
    key = {e.utt: e.key for e in entries()}
    labels = [line.split() for line in (d / "trial_label").read_text().splitlines()]
    assert len(labels) == 10 and sum(int(y) for _, y in labels) == 5
    for pair, label in labels:
        a, b = pair.split("*")
        assert (key[a] == key[b]) == (label == "1")
    trial2 = dict(line.split() for line in (d / "trial2.scp").read_text().splitlines())
    assert all(trial2[pair] == wavs[pair.split("*")[1]] for pair, _ in labels)


def test_protocol_and_data_dir_errors(tmp_path):
    bad = tmp_path / "p.txt"
    bad.write_text("LA_0079 LA_T_1 - - bonafide\nLA_0079 LA_T_2 - A01 fake\n")
    with pytest.raises(AdapterError, match=r"p.txt:2: expected 'SPEAKER UTTERANCE - SYSTEM bonafide\|spoof', got"):
        read_protocol(bad)
    only_bona = [e for e in entries() if e.key == "bonafide"]
    with pytest.raises(AdapterError, match="needs bona fide and spoof utterances, got only bonafide"):
        write_spoof_dir(tmp_path / "d", only_bona, {e.utt: "w" for e in only_bona})
    with pytest.raises(AdapterError, match="no audio for 1 protocol utterances, e.g. y1"):
        write_spoof_dir(tmp_path / "d", entries(), {e.utt: "w" for e in entries() if e.utt != "y1"})


def test_class_score_is_the_cosine_difference():
    weight = np.array([[1.0, 0.0], [0.0, 2.0]])  # rows in spk2utt order: bonafide, spoof
    emb = {"a": np.array([3.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([1.0, 1.0])}
    assert class_scores(emb, weight, ["bonafide", "spoof"]) == pytest.approx({"a": 1.0, "b": -1.0, "c": 0.0})
    assert class_scores(emb, weight[::-1], ["spoof", "bonafide"]) == pytest.approx({"a": 1.0, "b": -1.0, "c": 0.0})
    with pytest.raises(ValueError, match="classes bonafide and spoof"):
        class_scores(emb, weight, ["bonafide", "other"])


def test_pooled_and_per_attack_eer():
    # A01 separated from bona fide, A02 scored above every bona fide utterance
    scores = {"b0": 1.0, "b1": 2.0, "b2": 3.0, "b3": 4.0, "x0": -2.0, "x1": -1.0, "y0": 5.0, "y1": 6.0}
    result = spoof_result(entries(), scores)
    assert result["per_system"] == {"A01": 0.0, "A02": 100.0}
    assert result["eer"] == pytest.approx(50.0) and (result["bonafide"], result["spoof"]) == (4, 4)
    with pytest.raises(ValueError, match="no score for 1 test utterances, e.g. y1"):
        spoof_result(entries(), {k: v for k, v in scores.items() if k != "y1"})


def test_baseline_features_are_per_band_mean_and_std(tmp_path):
    rng = np.random.default_rng(0)
    loud, quiet = tmp_path / "loud.wav", tmp_path / "quiet.wav"
    noise = rng.standard_normal(16000).astype(np.float32) * 0.1
    soundfile.write(loud, noise, 16000)
    soundfile.write(quiet, noise * 0.1, 16000)
    a, b = utterance_features(str(loud)), utterance_features(str(quiet))
    assert a.shape == (160,)
    # a 20 dB quieter copy: log-mel means drop by ln(100) in every band, spreads stay
    assert a[:80] - b[:80] == pytest.approx(np.full(80, np.log(100.0)), abs=0.05)
    assert a[80:] == pytest.approx(b[80:], abs=0.05)
