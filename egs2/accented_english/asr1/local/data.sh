#!/usr/bin/env bash
# Common Voice English (and optionally L2-ARCTIC) -> Kaldi-style data dirs: train and dev in the
# adaptation accents, test_<accent> per accent, test_l2arctic_<l1> per L1; see local/README.md.
# Usage: local/data.sh [--db_root DIR] [--l2arctic DIR] [--l2arctic_l1s L1,...] [--out DIR] [--nj N]
#                      [--python PY] [other prepare_commonvoice.py options, e.g. --train_accents scotland,india]
#   --db_root       the Common Voice release (holding en/); default: $COMMONVOICE
#   --l2arctic      L2-ARCTIC (holding ABA/, SKA/, ...); default: $L2ARCTIC; left out when empty
#   --l2arctic_l1s  the L1s to make test sets for; default: all six
#   --out           default: data
#   --librispeech  the directory holding LibriSpeech/test-clean (forgetting set -> <out>/librispeech_test_clean);
#                  default: $LIBRISPEECH; left out when empty
#   --nj            L2-ARCTIC audio headers read in parallel; default: 1
#   --python        default: $python, else python3; it needs soundfile
# wav.scp decodes with sox when the audio is formatted for training: the Common Voice mp3 clips
# need sox's mp3 handler (libsox-fmt-mp3 on Debian/Ubuntu).
set -euo pipefail

db_root=${COMMONVOICE:-}
db_hint="COMMONVOICE to the Common Voice release holding en/"
l2arctic=${L2ARCTIC:-}
l2arctic_opts=()
recipe_option() {
    case "$1" in
        --l2arctic) l2arctic=${2:?"--l2arctic needs a value"} ;;
        --l2arctic_l1s) l2arctic_opts=(--l1s "${2:?"--l2arctic_l1s needs a value"}") ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$0")/../../../asr_utils/data_options.sh"

local_dir=$(dirname "$0")
"${python}" "${local_dir}/prepare_commonvoice.py" --db_root "${db_root}" --out "${out}" ${extra[@]+"${extra[@]}"}
if [ -n "${l2arctic}" ]; then
    "${python}" "${local_dir}/prepare_l2arctic.py" --db_root "${l2arctic}" --out "${out}" --nj "${nj}" \
        ${l2arctic_opts[@]+"${l2arctic_opts[@]}"}
fi
forgetting_set
