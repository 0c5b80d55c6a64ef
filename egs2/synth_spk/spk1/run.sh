#!/usr/bin/env bash
# synth_spk: speaker verification on synthesised speakers (no downloads).
#   ./run.sh                          Whisper base's encoder (real weights) + MHFA, every method at 1 %
#   ./run.sh --model wavlm_tiny       a tiny RANDOM WavLM (also wav2vec2_tiny, hubert_tiny): code path only
#   ./run.sh --methods "frozen ssvd"  some methods (frozen: the MHFA back-end alone, the baseline)
#   ./run.sh --fast true              tiny corpus, tiny random WavLM, 1 epoch, 3 methods: a few minutes
# Options: ../../TEMPLATE/spk1/synth.sh (--fast, --model) and ./spk.sh --help (everything else).
exec ../../TEMPLATE/spk1/synth.sh verification wavlm_tiny "frozen lora ssvd" "$@"
