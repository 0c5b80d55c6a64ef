# Where the corpora are on this machine (as ESPnet's db.sh): set them here or in the environment.
# Each recipe's local/data.sh reads its own; nothing can be downloaded for you (licensed corpora).
MYST=${MYST:-}                  # MyST release (LDC2021S05), holding data/
CMU_KIDS=${CMU_KIDS:-}          # CMU Kids release (LDC97S63), holding kids/ and tables/
COMMONVOICE=${COMMONVOICE:-}    # Common Voice English release, holding en/
L2ARCTIC=${L2ARCTIC:-}          # L2-ARCTIC, holding ABA/, SKA/, ... (optional)
LIBRISPEECH=${LIBRISPEECH:-}    # holding LibriSpeech/test-clean/: the source-domain forgetting set
export MYST CMU_KIDS COMMONVOICE L2ARCTIC LIBRISPEECH
