#!/usr/bin/env bash
# Shared stage script of the espnet_ssvd adaptation recipes (run from a recipe dir, egs2/*/asr1).
#   1 data (local/data.sh)   2 tokens (BPE, or the pretrained model's) + audio format + shape files
#   3 source model: pretraining, or --model (an espnet_model_zoo name or packed .zip, e.g. OWSM; or
#     whisper_base|small|medium|large-v3 or an openai-whisper .pt)
#   4 zero-shot decoding     5 adaptation per domain x method x budget (x outer fraction) x learning rate
#   6 decoding of every adapted model on its target dev set, test sets and the source test set
#   7 learning rate of each configuration selected on dev; --seeds N: N-1 more trainings of it, decoded
#   8 report: RESULTS.md with WER, 95 % bootstrap intervals, seeds, the learning-vs-forgetting frontier
#     and forgetting at matched learning, and plots
# Every training (3, 5, 7) and decoding (4, 6, 7) is a job with its own log and record under exp/jobs/<stage>/,
# run by submitit locally (--max_parallel_jobs at once) or on Slurm (--cluster slurm, conf/slurm.yaml).
# Re-running skips finished work and resubmits failed jobs; an interrupted training resumes from its
# last checkpoint.
set -euo pipefail

stage=1
stop_stage=8
ngpu=0                      # GPUs per training job (> 1: ESPnet's distributed training)
nj=2                        # parallel audio formatting
cluster=local               # local | slurm: where each training and decoding job runs
max_parallel_jobs=2         # local jobs at once (each with GPUs of its own when ngpu > 0)
slurm_conf=conf/slurm.yaml  # Slurm settings of every job (partition, time, mem, cpus_per_task, ...)
python=python3
adapter=""                  # one method: lora | dora | pissa | ssvd | ssvd_outer | full (default: all)
methods="lora dora pissa ssvd ssvd_outer full"
budget=""                   # one budget, e.g. 1% (default: budgets)
budgets="1%"
budget_tolerance=0.02
outer_fractions="0.5"       # ssvd_outer inner/outer split(s), e.g. "0 0.25 0.5 0.75" (the allocation study)
coverage=full               # full: every target layer, sizes mixed across layers to meet the budget; subset
sweep=minimal               # learning rates: lr_grid.minimal | lr_grid.full of each adapt_<method>.yaml | none
lrs=""                      # instead: "1e-4 1e-3" for every method, or "lora=1e-4,1e-3 ssvd=3e-4,1e-3"
seeds=1                     # trainings of each selected configuration
domains="child accent"
targets="all_linear"        # presets (all_linear, encoder_linear, decoder_linear, attention, ffn) or module-name suffixes
bpe_size=300
source_config=conf/tuning/train_source.yaml
model=""                    # pretrained source model (zoo name, .zip, whisper_<size>, .pt); empty: train one in stage 3
pretrained_cachedir=""      # espnet_model_zoo / openai-whisper cache dir (default: the library's own)
whisper_pad_seconds=30      # Whisper input padded to this many seconds in training and decoding (0: none)
adapt_set="{domain}_adapt"  # data sets of each target domain ({domain} = the domain name)
dev_set="{domain}_dev"
test_sets="{domain}_test"   # names or globs, e.g. "test_*" for one test set per accent
source_test_set=test_source # the forgetting set
lang_sym="<eng>"            # S2T (OWSM) language symbol
decode_method=beam          # beam (attention/CTC beam search) | ctc_greedy (CTC best path)
beam_size=5
adapt_config_dir=conf/tuning
data_opts=""                # passed to local/data.sh
train_args=""               # extra ESPnet options for every training
decode_batch_size=16
exp=exp
data=data

. "$(dirname "$(realpath "$0")")/options.sh" "$@"
[ -n "${adapter}" ] && methods="${adapter}"
[ -n "${budget}" ] && budgets="${budget}"

common=(--data "${data}" --exp "${exp}" --token_dir "${data}/token_list/bpe${bpe_size}" --bpe_size "${bpe_size}"
        --source_config "${source_config}" --adapt_config_dir "${adapt_config_dir}" --domains "${domains}"
        --methods "${methods}" --budgets "${budgets}" --budget_tolerance "${budget_tolerance}"
        --outer_fractions "${outer_fractions}" --coverage "${coverage}" --sweep "${sweep}" --lrs "${lrs}"
        --seeds "${seeds}" --targets "${targets}" --ngpu "${ngpu}"
        --decode_batch_size "${decode_batch_size}" --train_args "${train_args}" --model "${model}"
        --whisper_pad_seconds "${whisper_pad_seconds}"
        --adapt_set "${adapt_set}" --dev_set "${dev_set}" --test_sets "${test_sets}" --source_test_set "${source_test_set}"
        --lang_sym "${lang_sym}" --decode_method "${decode_method}" --beam_size "${beam_size}" --nj "${nj}"
        --cluster "${cluster}" --max_parallel_jobs "${max_parallel_jobs}" --slurm_conf "${slurm_conf}"
        ${pretrained_cachedir:+--pretrained_cachedir "${pretrained_cachedir}"})
recipe() { ${python} -m espnet_ssvd.recipe "$1" "${common[@]}"; }
log() { echo "[adapt.sh] $(date '+%H:%M:%S') $*"; }
# Before any work: an unknown method, a missing adapt_<method>.yaml or a bad budget stops the run here.
recipe check
mkdir -p "${exp}"

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "stage 1: data preparation"
  s=$SECONDS; local/data.sh --nj "${nj}" --python "${python}" ${data_opts}; echo $((SECONDS - s)) > "${exp}/stage_time.1"
fi
if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  log "stage 2: tokens (${model:-BPE ${bpe_size}}), audio format and shape files"
  s=$SECONDS; recipe tokens; echo $((SECONDS - s)) > "${exp}/stage_time.2"
fi
if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "stage 3: source model (${model:-pretraining with ${source_config}; cached once trained})"
  s=$SECONDS; recipe source; echo $((SECONDS - s)) > "${exp}/stage_time.3"
fi
for n in 4:zeroshot 5:adapt 6:decode 7:seeds 8:report; do
  i=${n%%:*}; name=${n#*:}
  if [ ${stage} -le ${i} ] && [ ${stop_stage} -ge ${i} ]; then
    log "stage ${i}: ${name}"
    s=$SECONDS; recipe "${name}"; echo $((SECONDS - s)) > "${exp}/stage_time.${i}"
  fi
done
log "finished stages ${stage}-${stop_stage}"
