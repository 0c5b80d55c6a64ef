#!/usr/bin/env bash
# VoxCeleb1 speaker verification: WavLM Base+ adapted with each method at a matched budget, an MHFA
# back-end trained alongside, EER / minDCF on Vox1-O (cleaned, veri_test2.txt). Corpus path: db.sh
# (or the environment); the model comes from the local Hugging Face cache (see README.md).
#   ./run.sh                                             every method at 1 %, WavLM Base+, 1 GPU
#   ./run.sh --model wavlm_large --methods "frozen lora ssvd" --budget 0.5%
#   ./run.sh --valid_speakers 40 --trials /data/veri_test2.txt     data options (local/data.sh)
# Every other option is spk.sh's (./spk.sh --help): --stage, --stop_stage, --cluster slurm, ...
set -euo pipefail
. ./db.sh
data_opts=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --db_root|--trials|--valid_speakers|--max_dev_targets) data_opts+=" $1 ${2:?"$1 needs a value"}"; shift 2 ;;
    --data_opts) data_opts+=" ${2:?"$1 needs a value"}"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
./spk.sh --model wavlm_base_plus --ngpu 1 --data_opts "${data_opts# }" "${args[@]+"${args[@]}"}"
