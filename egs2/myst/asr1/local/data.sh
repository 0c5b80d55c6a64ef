#!/usr/bin/env bash
# MyST (LDC2021S05) -> Kaldi-style data dirs <out>/{train,dev,test}; see local/README.md.
# Usage: local/data.sh [--db_root DIR] [--out DIR] [--nj N] [--python PY]
#                      [other prepare_myst.py options, e.g. --max_duration 20]
#   --db_root  the MyST release (holding data/); default: $MYST
#   --out      default: data
#   --librispeech  the directory holding LibriSpeech/test-clean (forgetting set -> <out>/librispeech_test_clean);
#                  default: $LIBRISPEECH; left out when empty
#   --nj       audio headers read in parallel; default: 1
#   --python   default: $python, else python3; it needs soundfile
set -euo pipefail

db_root=${MYST:-}
db_hint="MYST to the MyST release (https://catalog.ldc.upenn.edu/LDC2021S05)"
. "$(dirname "$0")/../../../asr_utils/data_options.sh"

"${python}" "$(dirname "$0")/prepare_myst.py" --db_root "${db_root}" --out "${out}" --nj "${nj}" \
    ${extra[@]+"${extra[@]}"}
forgetting_set
