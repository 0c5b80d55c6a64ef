#!/usr/bin/env bash
# Stage 1 of synth_shift: synthesise the corpus (installs flite, espeak-ng and sox when missing).
# --script: another corpus script with the same options (egs2/synth_spk/spk1 runs this one with its own).
set -euo pipefail
nj=2
python=python3
size=default
seed=1
out=data
script=local/make_corpus.py
while [ $# -gt 0 ]; do
  case "$1" in
    --nj) nj=$2 ;; --python) python=$2 ;; --size) size=$2 ;; --seed) seed=$2 ;; --out) out=$2 ;; --script) script=$2 ;;
    *) echo "local/data.sh: unknown option $1" >&2; exit 1 ;;
  esac
  shift 2
done
missing=()
for tool in flite espeak-ng sox; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "local/data.sh: installing ${missing[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite espeak-ng sox libsox-fmt-all >/dev/null
  else
    echo "local/data.sh: ${missing[*]} missing; install them: sudo apt-get install -y flite espeak-ng sox libsox-fmt-all" >&2
    exit 1
  fi
fi
if [ -f "${out}/.done.${size}.${seed}" ]; then
  echo "local/data.sh: ${out} already made (size ${size}, seed ${seed})"; exit 0
fi
"${python}" "${script}" --out "${out}" --size "${size}" --seed "${seed}" --nj "${nj}"
touch "${out}/.done.${size}.${seed}"
