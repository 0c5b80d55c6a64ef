"""The trivial spoof-detection baseline (``--task spoof``, a job of stage 3): logistic regression on
each utterance's mean and standard deviation of 80 log-mel filterbanks (Kaldi's, via torchaudio),
trained on the training set, scored on the test set. Its EER beside the methods' says how much of
the task a linear look at the average spectrum already solves."""

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..fileio import atomic_write_text
from ..progress import log
from .layout import BASELINE_DESCRIPTION, BASELINE_NAME, baseline_scores
from .protocol import BONAFIDE, read_protocol
from .settings import SpkSettings

def utterance_features(path: str) -> np.ndarray:
    wave, rate = soundfile.read(path, dtype="float32", always_2d=True)
    fbank = torchaudio.compliance.kaldi.fbank(torch.from_numpy(wave[:, 0] * 32768)[None], num_mel_bins=80,
                                              sample_frequency=rate)
    return torch.cat([fbank.mean(0), fbank.std(0)]).numpy()


def features(d: Path) -> tuple[list[str], np.ndarray]:
    wavs = dict(line.split(maxsplit=1) for line in (d / "wav.scp").read_text().splitlines())
    utts = sorted(wavs)
    return utts, np.stack([utterance_features(wavs[u]) for u in utts])


def fit_and_score(settings: SpkSettings) -> None:
    train = settings.data / "train"
    key = {e.utt: e.key for e in read_protocol(train / "protocol")}
    utts, x = features(train)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x, np.array([key[u] == BONAFIDE for u in utts], dtype=int))
    log(f"{BASELINE_NAME}: trained on {len(utts)} utterances ({BASELINE_DESCRIPTION})")
    test_utts, x_test = features(settings.data / settings.test_set)
    scores = model.decision_function(x_test)  # the log-odds of bona fide
    atomic_write_text(baseline_scores(settings), "".join(f"{u} {s:.6f}\n" for u, s in zip(test_utts, scores)))
