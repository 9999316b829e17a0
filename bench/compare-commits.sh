#!/usr/bin/env bash
# Runs one benchmark on two commits in the same session, alternating them round by round so both
# see the same machine load, and prints each round's figures side by side (issue 16, acceptance 6:
# "bench:control-plane is no slower than before the change in the same run of both commits").
#
#   bench/compare-commits.sh BASE HEAD [ROUNDS] [SCRIPT] [-- ARGS…]
#   bench/compare-commits.sh ee3ebd2 main 3 bench:control-plane -- --quick
#
# Each commit is checked out once as a detached worktree under ${LQ_COMPARE_DIR:-/tmp/lq-compare}
# with its own `npm ci` (reused on later calls) and runs its own version of the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
base=$1 head=$2; shift 2
rounds=3 script=bench:control-plane
[ $# -gt 0 ] && [ "$1" != -- ] && { rounds=$1; shift; }
[ $# -gt 0 ] && [ "$1" != -- ] && { script=$1; shift; }
[ "${1:-}" = -- ] && shift
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number, not '$rounds'" >&2; exit 2; }
root=${LQ_COMPARE_DIR:-/tmp/lq-compare}
mkdir -p "$root"

checkout() { # commit → worktree path
  local sha dir
  sha=$(git rev-parse --verify "$1^{commit}") || { echo "no such commit: $1" >&2; exit 2; }
  dir=$root/$sha
  if [ ! -d "$dir" ]; then
    git worktree add --detach "$dir" "$sha" >&2
  fi
  if [ ! -f "$dir/node_modules/.package-lock.json" ]; then
    echo "== npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
  echo "$dir"
}

a=$(checkout "$base")
b=$(checkout "$head")
for r in $(seq 1 "$rounds"); do
  for side in "$base:$a" "$head:$b"; do
    name=${side%%:*} dir=${side#*:}
    out=$root/round-$r-$(basename "$dir").log
    echo "== round $r/$rounds: $name ($(git -C "$dir" log --oneline -1 | cut -c1-60))"
    if ! (cd "$dir" && npm run -s "$script" -- "$@" >"$out" 2>&1); then
      echo "   $script failed on $name: see $out" >&2
      exit 1
    fi
    grep -E 'median|ops/s|p95|p99' "$out" | sed 's/^/   /'
  done
done
