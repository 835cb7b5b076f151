# Installing the Debian packages of scripts/packages.txt that are missing (sourced by scripts/test
# and scripts/bench, from the repository root).

# missing_packages [WHAT...]: prints the package of each WHAT (a command or an absolute path of
# scripts/packages.txt; all of them when none is given) that is missing, one a line. Fails, naming
# it, on a WHAT the file has no line for.
missing_packages() {
  local what pkg w
  local -A asked=()
  for w in "$@"; do asked[$w]=1; done
  while read -r what pkg; do
    case $what in '' | '#'*) continue ;; esac
    if [ $# -gt 0 ]; then
      [ -n "${asked[$what]:-}" ] || continue
      unset "asked[$what]"
    fi
    if [ "${what:0:1}" = / ]; then [ -e "$what" ] && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
    echo "$pkg"
  done <scripts/packages.txt
  for w in "${!asked[@]}"; do
    echo "scripts/packages.txt has no line for $w" >&2
    return 1
  done
}

# install_missing WHO [WHAT...]: installs the missing packages of the WHATs (see missing_packages)
# with apt-get, after apt-get update, saying "WHO: installing ..." first. On failure says why in
# one line on stderr ("WHO: apt-get install ... failed") and returns 1.
install_missing() {
  local who=$1 sudo="" list
  shift
  list=$(missing_packages "$@") || { echo "$who: can't tell which packages are missing" >&2; return 1; }
  local -a need
  read -r -d '' -a need <<<"$list" || true
  [ ${#need[@]} -eq 0 ] && return 0
  echo "$who: installing ${need[*]}"
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null || {
    echo "$who: apt-get install ${need[*]} failed" >&2
    return 1
  }
}
