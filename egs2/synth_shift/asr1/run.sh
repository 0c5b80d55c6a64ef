#!/usr/bin/env bash
# synth_shift: offline child-speech and accent benchmark (synthesised speech, no downloads).
#   ./run.sh                                   Whisper base adapted to accented speech, every method at 1 %
#   ./run.sh --domains "accent child"           both target domains
#   ./run.sh --adapter ssvd_outer --budget 1%   one method
#   ./run.sh --model ''                         from scratch: a 1.2M-parameter model pretrained in stage 3
#   ./run.sh --fast true                        tiny corpus and model, 1 epoch: every stage in a few minutes
#   ./run.sh --protocol full                    the full comparison: 4 learning rates per method, 3 seeds,
#                                               budgets 0.5/1/2 %, both domains, SSVD-O outer shares 0-0.75
# Every method is trained at each learning rate of its YAML's lr_grid (--sweep minimal: 2 values);
# the one with the lowest target dev WER is reported, with the whole sweep as a learning-vs-forgetting frontier.
set -euo pipefail
fast=false
model=default
protocol=minimal
python=python3
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fast) fast=$2; shift 2 ;;
    --protocol) protocol=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --python) python=$2; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ "${model}" = default ] && { [ "${fast}" = true ] && model="" || model=whisper_base; }
opts=(--model "${model}" --budget_tolerance 0.01 --decode_method beam)
if [ -z "${model}" ]; then
  # On this 1.2M-parameter model one LoRA rank over all 44 linear layers is 1.1 % of the model and one
  # DoRA rank 1.7 %: at 1 % the budget matcher falls back to rank 1 on an evenly spaced subset of the
  # layers (every other method covers every layer). RESULTS.md shows each count and layer coverage.
  # Decoding: ESPnet's joint CTC/attention beam search, beam 10 (~0.1 s per utterance on CPU): 9.9 %
  # source WER where batched greedy CTC (--decode_method ctc_greedy, ~10x faster) gives 15.0 %.
  opts+=(--domains "child accent")
  if [ "${fast}" = true ]; then
    # Tiny corpus and model, 1 epoch, one domain, two learning rates and two seeds per method:
    # exercises every stage, numbers are meaningless. Greedy CTC: the beam search of a model this
    # poor runs every hypothesis to its maximum length.
    opts+=(--source_config conf/tuning/train_source_fast.yaml --bpe_size 100 --data_opts "--size fast" --budgets 4%
           --train_args "--max_epoch 1" --decode_method ctc_greedy --domains child --seeds 2)
  else
    opts+=(--source_config conf/tuning/train_source.yaml --bpe_size 300 --beam_size 10)
  fi
else
  if [ "${model}" = whisper_base ]; then
    local/whisper_base.sh --python "${python}" --out downloads/whisper/base.pt
    opts+=(--pretrained_cachedir downloads/whisper)
  fi
  # Whisper: inputs padded to 10 s, not Whisper's 30 s (a third of the encoder cost; every utterance
  # here is shorter). Unpadded, zero-shot Whisper repeats itself (benchmarks/results/whisper_padding.md).
  # Greedy decoding with openai-whisper's cached loop (~0.6 s per utterance on CPU).
  opts+=(--domains accent --whisper_pad_seconds 10 --beam_size 1 --adapt_config_dir conf/tuning/whisper_base)
  if [ "${fast}" = true ]; then
    opts+=(--data_opts "--size fast" --budgets 4% --train_args "--max_epoch 1")
  else
    opts+=(--data_opts "--size whisper")
  fi
fi
case "${protocol}" in
  minimal) ;;
  full) opts+=(--domains "accent child" --sweep full --seeds 3 --budgets "0.5% 1% 2%" --outer_fractions "0 0.25 0.5 0.75") ;;
  *) echo "run.sh: --protocol ${protocol}: choose minimal or full" >&2; exit 1 ;;
esac
./adapt.sh "${opts[@]}" "${args[@]+"${args[@]}"}"
