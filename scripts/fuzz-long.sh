#!/usr/bin/env bash
# Long fuzzing: every cargo-fuzz target (`cargo fuzz list` in fuzz/) in turn, for MINUTES each
# (default 10; fractions allowed, e.g. 0.5), starting from the grown corpus fuzz/corpus/<target>
# and the checked-in seeds fuzz/seeds/<target>. New inputs are kept in fuzz/corpus/<target>;
# crash inputs land in fuzz/artifacts/<target>/ (cargo-fuzz's artifact prefix).
#
# Prints one row per target: executions, coverage (libFuzzer's last `cov:` edges and `ft:`
# features), corpus size, crashes (artifacts written during this run), and cargo fuzz's exit
# status. Exits non-zero if any target crashed or failed.
#
#   scripts/fuzz-long.sh            # 10 minutes per target
#   scripts/fuzz-long.sh 30         # 30 minutes per target
#   SECONDS_PER_TARGET=20 scripts/fuzz-long.sh   # CI: 20 seconds per target
#
# Env: SECONDS_PER_TARGET (overrides MINUTES), FUZZ_TARGETS (space-separated subset),
# FUZZ_ARGS (extra libFuzzer flags), FUZZ_TARGET_DIR (cargo's target dir for the sanitizer build;
# default $HOME/.cache/mcp-security/fuzz-target, kept apart from the main build),
# FUZZ_LOG_DIR (where each target's full libFuzzer log goes; default a temporary directory).
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on stable with RUSTC_BOOTSTRAP=1
# (AddressSanitizer, as CI does).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"

minutes=${1:-10}
if [ -n "${SECONDS_PER_TARGET:-}" ]; then
  per_target=$SECONDS_PER_TARGET
else
  per_target=$(awk -v m="$minutes" 'BEGIN { if (m !~ /^[0-9]*\.?[0-9]+$/) exit 1; s = int(m * 60 + 0.5); print (s < 1 ? 1 : s) }') || {
    echo "fuzz-long: MINUTES must be a number (got '$minutes')" >&2
    exit 2
  }
fi
case "$per_target" in
  '' | *[!0-9]* | 0) echo "fuzz-long: SECONDS_PER_TARGET must be a positive integer (got '$per_target')" >&2; exit 2 ;;
esac

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz-long: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/mcp-security/fuzz-target}"
export RUSTC_BOOTSTRAP=1
log_dir="${FUZZ_LOG_DIR:-$(mktemp -d)}"
mkdir -p "$log_dir"

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
[ -n "$targets" ] || { echo "fuzz-long: no fuzz targets" >&2; exit 2; }
count=$(wc -w <<<"$targets")
echo "fuzz-long: $count targets, ${per_target}s each, logs in $log_dir ($(date -u '+%Y-%m-%d %H:%M UTC'))"

# Build every target once, up front, so the clock of each run is spent fuzzing.
if ! cargo fuzz build >"$log_dir/build.log" 2>&1; then
  tail -40 "$log_dir/build.log"
  echo "fuzz-long: cargo fuzz build failed" >&2
  exit 1
fi

rows=()
failed=0
for target in $targets; do
  mkdir -p "corpus/$target" "artifacts/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  before=$(find "artifacts/$target" -type f | wc -l)
  log="$log_dir/$target.log"
  echo "-- $target (${per_target}s)"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  cargo fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$per_target" -rss_limit_mb=4096 -print_final_stats=1 ${FUZZ_ARGS:-} \
    >"$log" 2>&1
  status=$?
  after=$(find "artifacts/$target" -type f | wc -l)
  crashes=$((after - before))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ -z "$execs" ]; then
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  corpus=$(find "corpus/$target" -type f | wc -l)
  rows+=("$(printf '| %-20s | %12s | %6s | %7s | %7s | %7s | %6s |' \
    "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$crashes" "$status")")
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    tail -30 "$log"
    echo "fuzz-long: $target FAILED (exit $status, $crashes new artifact(s) in fuzz/artifacts/$target)"
  fi
done

echo
echo "fuzz-long: ${per_target}s per target, $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '| %-20s | %12s | %6s | %7s | %7s | %7s | %6s |\n' target executions cov ft corpus crashes exit
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..22})" "$(printf -- '-%.0s' {1..14})" \
  "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..9})" \
  "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..8})"
printf '%s\n' "${rows[@]}"
if [ "$failed" -ne 0 ]; then
  echo "fuzz-long: FAILED: a target crashed or exited non-zero (see above and $log_dir)"
  exit 1
fi
echo "fuzz-long: OK: no crashes"
