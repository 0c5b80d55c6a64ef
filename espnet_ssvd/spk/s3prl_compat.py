"""Make s3prl 0.4.18 importable with the installed torchaudio.

``import s3prl.nn`` (what ESPnet's s3prl frontend does) imports the code of every s3prl upstream,
and two of them use torchaudio APIs that newer torchaudio releases removed (s3prl issue #575):
``torchaudio.set_audio_backend`` is called at import (BYOL-S), and ``torchaudio.sox_effects`` is
imported (MOS prediction). The first has been a no-op since torchaudio's backend dispatcher, so a
no-op stands in for it; the second becomes a module whose function refuses to run, so only those
upstreams' audio effects, not every s3prl upstream, are unavailable.
"""

import importlib
import sys
import types

import torchaudio

from ..adapters.errors import AdapterError


def _no_sox_effects(*args, **kwargs):
    raise AdapterError("torchaudio.sox_effects was removed from the installed torchaudio: the s3prl upstream "
                       "calling it cannot run; use an upstream that does not (wavlm, hubert, wav2vec2, ...)")


def make_s3prl_importable() -> None:
    """Idempotent; changes nothing where torchaudio still has both."""
    if not hasattr(torchaudio, "set_audio_backend"):
        torchaudio.set_audio_backend = lambda backend: None
    try:
        importlib.import_module("torchaudio.sox_effects")
    except ImportError:
        stub = types.ModuleType("torchaudio.sox_effects")
        stub.apply_effects_tensor = _no_sox_effects
        sys.modules["torchaudio.sox_effects"] = stub
        torchaudio.sox_effects = stub
