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
out=data
nj=1
python=${python:-python3}
librispeech=${LIBRISPEECH:-}
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --db_root) db_root=${2:?"--db_root needs a value"}; shift 2 ;;
        --out) out=${2:?"--out needs a value"}; shift 2 ;;
        --librispeech) librispeech=${2:?"--librispeech needs a value"}; shift 2 ;;
        --nj) nj=${2:?"--nj needs a value"}; shift 2 ;;
        --python) python=${2:?"--python needs a value"}; shift 2 ;;
        *) extra+=("$1"); shift ;;
    esac
done
if [ -z "${db_root}" ]; then
    echo "$0: error: pass --db_root or set MYST to the MyST release (https://catalog.ldc.upenn.edu/LDC2021S05)" >&2
    exit 1
fi

"${python}" "$(dirname "$0")/prepare_myst.py" --db_root "${db_root}" --out "${out}" --nj "${nj}" \
    ${extra[@]+"${extra[@]}"}
if [ -n "${librispeech}" ]; then  # the source-domain forgetting set
    "${python}" "$(dirname "$0")/../../../asr_utils/prepare_librispeech.py" --db_root "${librispeech}" \
        --out "${out}/librispeech_test_clean"
fi
