#!/usr/bin/env bash
# synth_spk: speaker verification on synthesised speakers (no downloads).
#   ./run.sh                          Whisper base's encoder (real weights) + MHFA, every method at 1 %
#   ./run.sh --model wavlm_tiny       a tiny RANDOM WavLM (also wav2vec2_tiny, hubert_tiny): code path only
#   ./run.sh --methods "frozen ssvd"  some methods (frozen: the MHFA back-end alone, the baseline)
#   ./run.sh --fast true              tiny corpus, tiny random WavLM, 1 epoch, 3 methods: a few minutes
set -euo pipefail
fast=false
model=default
python=python3
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fast) fast=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --python) python=$2; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ "${model}" = default ] && { [ "${fast}" = true ] && model=wavlm_tiny || model=whisper_base; }
opts=(--model "${model}")
if [ "${fast}" = true ]; then
  opts+=(--data_opts "--size fast" --train_config conf/train_fast.yaml --methods "frozen lora ssvd" --budget 4%)
fi
if [ "${model}" = whisper_base ]; then
  ../../synth_shift/asr1/local/whisper_base.sh --python "${python}" --out downloads/whisper/base.pt
  # UniPET adapts Hugging Face SSL layers; Whisper's encoder blocks are not among them.
  [ "${fast}" = true ] || opts+=(--methods "frozen lora dora pissa ssvd ssvd_outer spectral_lora full")
fi
./spk.sh "${opts[@]}" "${args[@]+"${args[@]}"}"
