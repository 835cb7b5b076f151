# Whether dist/ is older than what it is built from, and building it again then (sourced by
# scripts/demo, scripts/bench, scripts/install and scripts/package, from the repository root).

# What scripts/build reads: a change to any of these makes dist/ stale.
BUILD_SOURCES=(src crates package.json package-lock.json Cargo.toml Cargo.lock tsconfig.json scripts/build)
# What scripts/build writes (dist/huptime after dist/huptime.node, before the man page and completion).
BUILD_OUTPUTS=(dist/huptime.node dist/huptime dist/huptime.1 dist/huptime.bash)

# build_is_stale: true when an output of scripts/build is missing, or a source file is newer than
# dist/huptime (cargo's target directories are not sources).
build_is_stale() {
  local out
  for out in "${BUILD_OUTPUTS[@]}"; do [ -e "$out" ] || return 0; done
  [ -n "$(find "${BUILD_SOURCES[@]}" -name target -prune -o -newer dist/huptime -print -quit)" ]
}

# build_if_stale: runs scripts/build when build_is_stale.
build_if_stale() {
  if build_is_stale; then scripts/build; fi
}
