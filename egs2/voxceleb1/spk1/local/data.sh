#!/usr/bin/env bash
# VoxCeleb1 -> ESPnet spk1 data dirs <out>/{train,dev,test} (stage 1 of spk.sh); see ../README.md.
# Usage: local/data.sh [--db_root DIR] [--out DIR] [--python PY]
#                      [prepare_voxceleb1.py options: --trials FILE --valid_speakers N --max_dev_targets N --seed N]
#   --db_root  the directory holding VoxCeleb1's wav/ tree(s) and veri_test2.txt; default: $VOXCELEB1
#   --trials   the Vox1-O trial list; default: <db_root>/veri_test2.txt
#   --valid_speakers  VoxCeleb1 dev speakers held out as the validation (dev) set; default: 20
#   --python   default: $python, else python3; it needs the espnet_ssvd package (no ESPnet import)
#   (--nj is accepted for spk.sh and not used: nothing is decoded or measured here)
set -euo pipefail

db_root=${VOXCELEB1:-}
db_hint="VOXCELEB1 (db.sh or the environment) to the directory holding VoxCeleb1's wav/ tree(s) and veri_test2.txt"
. "$(dirname "$0")/../../../asr_utils/data_options.sh"

"${python}" "$(dirname "$0")/prepare_voxceleb1.py" --db_root "${db_root}" --out "${out}" ${extra[@]+"${extra[@]}"}
