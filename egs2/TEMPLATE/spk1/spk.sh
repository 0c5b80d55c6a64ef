#!/usr/bin/env bash
# Stage script of the speaker-verification and spoof-detection recipes (egs2/*/spk1 link it):
#   1 data: the recipe's local/data.sh (train, --valid_set with trial lists, --test_set)
#   2 prepare: shape files, the base model (frontend + fresh MHFA) and the budget-matched plan
#   3 train: one job per method (adapter in the frontend, MHFA back-end and loss trained alongside);
#     --task spoof: also the trivial baseline (logistic regression on mean log-mel)
#   4 extract: one job per trained model: embeddings of the test utterances
#   5 score: verification: cosine scores of the trials, EER, minDCF; spoof: class scores, EER per attack
#   6 report: RESULTS.md
# Every training and extraction is a job with its own log and record under exp/jobs/<stage>/, run
# by submitit here (--max_parallel_jobs at once) or on Slurm (--cluster slurm); a rerun skips
# finished work.
set -euo pipefail

stage=1
stop_stage=6
python=python3
task=verification          # verification | spoof
nj=2                        # parallel data preparation
data_opts=""                # passed to local/data.sh (e.g. --size fast)
valid_set=dev               # validation trials of ESPnet's speaker task (checkpoint choice)
test_set=test
model=wavlm_tiny            # conf/model/<model>.yaml
train_config=conf/train.yaml
methods="frozen lora dora pissa ssvd ssvd_outer spectral_lora unipet full"
budget="1%"                 # of the frontend's parameters
budget_tolerance=0.05
p_target=0.05               # minDCF prior
train_args=""               # extra ESPnet options of every training
ngpu=0
cluster=local
max_parallel_jobs=2
slurm_conf=conf/slurm.yaml
exp=exp
data=data

USAGE_END=12 . "$(dirname "$(realpath "$0")")/../adapt1/options.sh" "$@"
common=(--task "${task}" --valid_set "${valid_set}" --test_set "${test_set}" --data "${data}" --exp "${exp}"
        --model "${model}" --train_config "${train_config}" --methods "${methods}"
        --budget "${budget}" --budget_tolerance "${budget_tolerance}" --p_target "${p_target}"
        --train_args "${train_args}" --ngpu "${ngpu}" --cluster "${cluster}"
        --max_parallel_jobs "${max_parallel_jobs}" --slurm_conf "${slurm_conf}")
export RECIPE_LOG_TAG=spk.sh  # the tag of the stages' progress lines
recipe() { ${python} -m espnet_ssvd.spk_recipe "$1" "${common[@]}"; }
log() { echo "[spk.sh] $(date '+%H:%M:%S') $*"; }
recipe check  # options checked before any work
mkdir -p "${exp}"

for n in 1:data 2:prepare 3:train 4:extract 5:score 6:report; do
  i=${n%%:*}; name=${n#*:}
  if [ ${stage} -le ${i} ] && [ ${stop_stage} -ge ${i} ]; then
    log "stage ${i}: ${name}"
    s=$SECONDS
    if [ "${name}" = data ]; then local/data.sh --nj "${nj}" --python "${python}" --out "${data}" ${data_opts}
    else recipe "${name}"; fi
    echo $((SECONDS - s)) > "${exp}/stage_time.${i}"
  fi
done
log "finished stages ${stage}-${stop_stage}"
