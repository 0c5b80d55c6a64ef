"""Make the speaker modules known to ESPnet's speaker task (``frontend: ssl_layers`` / ``s3prl_layers`` /
``whisper_layers``, ``pooling: mhfa``, ``projector: identity``; idempotent). ``frontend: s3prl`` of the speaker
and ASR tasks builds ESPnet's S3prlFrontend with attention that calls its projections (s3prl_frontend.py), so
adapters inside the upstream train."""

from espnet2.tasks import asr, spk

from .frontend import SSLLayersFrontend
from .mhfa import MHFAPooling
from .projector import IdentityProjector
from .s3prl_frontend import ModuleCallingS3prlFrontend, S3prlLayersFrontend
from .whisper_frontend import WhisperLayersFrontend


def register() -> None:
    for task in (spk, asr):
        task.frontend_choices.classes["s3prl"] = ModuleCallingS3prlFrontend
    spk.frontend_choices.classes["ssl_layers"] = SSLLayersFrontend
    spk.frontend_choices.classes["s3prl_layers"] = S3prlLayersFrontend
    spk.frontend_choices.classes["whisper_layers"] = WhisperLayersFrontend
    spk.pooling_choices.classes["mhfa"] = MHFAPooling
    spk.projector_choices.classes["identity"] = IdentityProjector
