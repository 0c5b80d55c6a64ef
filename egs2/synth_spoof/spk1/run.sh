#!/usr/bin/env bash
# synth_spoof: spoof detection (bona fide vs synthesised / converted speech, attacks in test unseen
# in training) on synthesised speech, no downloads.
#   ./run.sh                          Whisper base's encoder (real weights) + MHFA, every method at 1 %
#   ./run.sh --model wav2vec2_tiny    a tiny RANDOM wav2vec 2.0 (also wavlm_tiny, hubert_tiny): code path only
#   ./run.sh --fast true              tiny corpus, tiny random wav2vec 2.0, 1 epoch, 3 methods: a few minutes
# Options: ../../TEMPLATE/spk1/synth.sh (--fast, --model) and ./spk.sh --help (everything else).
exec ../../TEMPLATE/spk1/synth.sh spoof wav2vec2_tiny "frozen lora ssvd_outer" "$@"
