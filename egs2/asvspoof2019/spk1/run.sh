#!/usr/bin/env bash
# ASVspoof 2019 LA: spoof detection (bona fide vs TTS / VC attacks; the evaluation set's attacks
# A07-A19 are mostly unseen in training) with a pretrained SSL model adapted by each method at a
# matched budget and an MHFA back-end; EER pooled and per attack. Corpus path: db.sh (or the environment).
#   ./run.sh                                       every method at 1 %, wav2vec 2.0 XLS-R 300M (317M)
#   ./run.sh --model wavlm_large --methods "frozen lora ssvd_outer" --budget 0.5%
# --model: conf/model/<name>.yaml; a Hugging Face name there is read from the local Hugging Face cache
# (download it beforehand on a machine with internet, e.g. `huggingface-cli download <name>`).
set -euo pipefail
. ./db.sh
./spk.sh --task spoof --model wav2vec2_xlsr --ngpu 1 --test_set eval "$@"
