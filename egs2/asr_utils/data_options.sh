# Sourced by the real-corpus recipes' local/data.sh: the options they share and the forgetting set.
# Before sourcing, a recipe sets db_root (from its corpus variable) and db_hint (what to set when it
# is empty), and may define recipe_option NAME VALUE for options of its own (status 1: not its
# own). Options nobody takes are collected in extra=() for the recipe's prepare script.
out=data
nj=1
python=${python:-python3}
librispeech=${LIBRISPEECH:-}
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --db_root|--out|--librispeech|--nj|--python)
            printf -v "${1#--}" '%s' "${2:?"$1 needs a value"}"; shift 2 ;;
        *)
            if declare -F recipe_option > /dev/null && recipe_option "$1" "${2:-}"; then
                shift 2
            else
                extra+=("$1"); shift
            fi ;;
    esac
done
if [ -z "${db_root}" ]; then
    echo "$0: error: pass --db_root or set ${db_hint}" >&2
    exit 1
fi

# LibriSpeech test-clean -> ${out}/librispeech_test_clean: the source-domain forgetting set
# (skipped when no LibriSpeech is given).
forgetting_set() {
    if [ -n "${librispeech}" ]; then
        "${python}" "$(dirname "${BASH_SOURCE[0]}")/prepare_librispeech.py" --db_root "${librispeech}" \
            --out "${out}/librispeech_test_clean"
    fi
}
