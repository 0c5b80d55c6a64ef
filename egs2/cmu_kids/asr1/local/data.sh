#!/usr/bin/env bash
# CMU Kids (LDC97S63) -> speaker-disjoint Kaldi-style data dirs <out>/{train,dev,test}; layout in local/README.md.
# Usage: local/data.sh [--db_root DIR] [--out DIR] [--python PY]
#                      [other prepare_cmu_kids.py options, e.g. --text_source prompt]
#   --db_root  the CMU Kids release (holding kids/ and tables/); default: $CMU_KIDS
#   --out      default: data
#   --librispeech  the directory holding LibriSpeech/test-clean (forgetting set -> <out>/librispeech_test_clean);
#                  default: $LIBRISPEECH; left out when empty
#   --python   default: $python, else python3
#   --nj       accepted, as the shared stage script passes it; nothing here runs in parallel
# wav.scp decodes the SPHERE files with sox, when the audio is formatted for training.
set -euo pipefail

db_root=${CMU_KIDS:-}
db_hint="CMU_KIDS to the CMU Kids release (https://catalog.ldc.upenn.edu/LDC97S63)"
. "$(dirname "$0")/../../../asr_utils/data_options.sh"

"${python}" "$(dirname "$0")/prepare_cmu_kids.py" --db_root "${db_root}" --out "${out}" ${extra[@]+"${extra[@]}"}
forgetting_set
