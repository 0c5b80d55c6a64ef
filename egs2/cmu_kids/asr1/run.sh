#!/usr/bin/env bash
# CMU Kids children's read speech (ages 6-11):
# a pretrained OWSM adapted with each method at a matched budget, WER on the target test set(s)
# (learning) and on LibriSpeech test-clean (forgetting). Corpus paths: db.sh (or the environment).
#   ./run.sh                                             all methods at 1 % with OWSM v3.1 medium (1B)
#   ./run.sh --model owsm_v3.1_ebf_base --adapter ssvd_outer --budget 1%
#   ./run.sh --budgets "0.5% 1% 2%" --outer_fractions "0 0.25 0.5"
# --model: owsm_v3.1_ebf_base (0.1B), owsm_v3.1_ebf_small (0.37B), owsm_v3.1_ebf (1B), owls_2B_180K (2B),
# any other espnet_model_zoo name, or a packed model .zip (machines without internet).
set -euo pipefail
. ./db.sh
./adapt.sh --model owsm_v3.1_ebf --ngpu 1 --domains cmu_kids --adapt_set train --dev_set dev --test_sets test \
    --source_test_set librispeech_test_clean "$@"
