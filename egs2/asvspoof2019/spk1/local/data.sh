#!/usr/bin/env bash
# ASVspoof 2019 LA -> ESPnet data dirs <out>/{train,dev,eval} with ASVspoof protocols (see README.md).
# Usage: local/data.sh [--db_root DIR] [--out DIR] [--python PY] [--valid_trials N]
#   --db_root       the ASVspoof 2019 release (holding LA/), or LA/ itself; default: $ASVSPOOF2019
#   --valid_trials  validation trials drawn from dev (ESPnet's speaker validation); default 2000
set -euo pipefail

db_root=${ASVSPOOF2019:-}
db_hint="ASVSPOOF2019 to the ASVspoof 2019 release holding LA/ (https://doi.org/10.7488/ds/2555)"
. "$(dirname "$0")/../../../asr_utils/data_options.sh"

"${python}" "$(dirname "$0")/prepare_asvspoof2019.py" --db_root "${db_root}" --out "${out}" \
    ${extra[@]+"${extra[@]}"}
