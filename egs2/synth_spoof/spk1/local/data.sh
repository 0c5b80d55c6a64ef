#!/usr/bin/env bash
# Stage 1 of synth_spoof: synth_shift's data script (tool checks, caching) with this recipe's corpus script.
set -euo pipefail
exec "$(dirname "$0")/../../../synth_shift/asr1/local/data.sh" --script local/make_spoof_corpus.py "$@"
