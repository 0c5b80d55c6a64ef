# Sourced by a stage script (adapt.sh, spk1/spk.sh) after its option defaults, with its
# arguments: each --name value sets the variable name= (a line of the script); --help prints the
# script's header (lines 2 to ${USAGE_END:-11}) and its options.
# An option is a line name=value; name=( ... ) lines are the script's own arrays, not options.
usage() { sed -n "2,${USAGE_END:-11}p" "$0"; grep -E '^[a-z_]+=[^(]' "$0" | sed 's/^/  --/'; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage ;;
    --*) name="${1#--}"; name="${name//-/_}"
         grep -qE "^${name}=[^(]" "$0" || { echo "$(basename "$0"): unknown option --${name}" >&2; usage; }
         [ $# -ge 2 ] || { echo "$(basename "$0"): --${name} needs a value" >&2; exit 1; }
         printf -v "$name" '%s' "$2"; shift 2 ;;
    *) echo "$(basename "$0"): unexpected argument $1" >&2; usage ;;
  esac
done
