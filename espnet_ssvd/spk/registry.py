"""Make the speaker modules known to ESPnet's speaker task (``frontend: ssl_layers`` / ``whisper_layers``, ``pooling:
mhfa``, ``projector: identity``; idempotent)."""

from espnet2.tasks.spk import frontend_choices, pooling_choices, projector_choices

from .frontend import SSLLayersFrontend
from .mhfa import MHFAPooling
from .projector import IdentityProjector
from .whisper_frontend import WhisperLayersFrontend


def register() -> None:
    frontend_choices.classes["ssl_layers"] = SSLLayersFrontend
    frontend_choices.classes["whisper_layers"] = WhisperLayersFrontend
    pooling_choices.classes["mhfa"] = MHFAPooling
    projector_choices.classes["identity"] = IdentityProjector
