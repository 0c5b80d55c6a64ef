#!/usr/bin/env bash
# The run.sh of the synthetic speaker recipes (synth_spk, synth_spoof), called from the recipe dir as
#   ../../TEMPLATE/spk1/synth.sh TASK FAST_MODEL "FAST_METHODS" [options]
# --fast true: the small corpus, FAST_MODEL (a tiny random stand-in), 1 epoch, FAST_METHODS at 4 %;
# --model NAME: conf/model/NAME.yaml (default: whisper_base, converted offline from the package index);
# every other option goes to spk.sh.
set -euo pipefail
task=$1 fast_model=$2 fast_methods=$3
shift 3
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
[ "${model}" = default ] && { [ "${fast}" = true ] && model=${fast_model} || model=whisper_base; }
opts=(--task "${task}" --model "${model}")
if [ "${fast}" = true ]; then
  opts+=(--data_opts "--size fast" --train_config conf/train_fast.yaml --methods "${fast_methods}" --budget 4%)
fi
if [ "${model}" = whisper_base ]; then
  ../../synth_shift/asr1/local/whisper_base.sh --python "${python}" --out downloads/whisper/base.pt
  # UniPET adapts Hugging Face SSL layers; Whisper's encoder blocks are not among them.
  [ "${fast}" = true ] || opts+=(--methods "frozen lora dora pissa ssvd ssvd_outer spectral_lora full")
fi
./spk.sh "${opts[@]}" "${args[@]+"${args[@]}"}"
