#!/usr/bin/env bash
# synth_spoof: spoof detection (bona fide vs synthesised / converted speech, attacks in test unseen
# in training) on synthesised speech, no downloads.
#   ./run.sh                          Whisper base's encoder (real weights) + MHFA, every method at 1 %
#   ./run.sh --model wav2vec2_tiny    a tiny RANDOM wav2vec 2.0 (also wavlm_tiny, hubert_tiny): code path only
#   ./run.sh --fast true              tiny corpus, tiny random wav2vec 2.0, 1 epoch, 3 methods: a few minutes
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
[ "${model}" = default ] && { [ "${fast}" = true ] && model=wav2vec2_tiny || model=whisper_base; }
opts=(--task spoof --model "${model}")
if [ "${fast}" = true ]; then
  opts+=(--data_opts "--size fast" --train_config conf/train_fast.yaml --methods "frozen lora ssvd_outer" --budget 4%)
fi
if [ "${model}" = whisper_base ]; then
  ../../synth_shift/asr1/local/whisper_base.sh --python "${python}" --out downloads/whisper/base.pt
  # UniPET adapts Hugging Face SSL layers; Whisper's encoder blocks are not among them.
  [ "${fast}" = true ] || opts+=(--methods "frozen lora dora pissa ssvd ssvd_outer spectral_lora full")
fi
./spk.sh "${opts[@]}" "${args[@]+"${args[@]}"}"
