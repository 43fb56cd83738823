#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60) and stops at the first crash,
# panic, leak, timeout or out-of-memory. Not part of CI: it takes minutes. See fuzz/README.md.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Works on stable Rust: RUSTC_BOOTSTRAP=1 unlocks the nightly-only flags cargo-fuzz passes
# (-Zsanitizer=address and friends). Environment:
#   FUZZ_SANITIZER   address (default) or none: no AddressSanitizer, about twice as fast
#   FUZZ_JOBS        parallel libFuzzer workers per target (default 1)
#   CARGO_TARGET_DIR shared with cargo as usual (default fuzz/target)
set -euo pipefail

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi
cd "$(dirname "$0")"

export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-1}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Build everything first so a compile error fails before any time is spent fuzzing.
for t in "${targets[@]}"; do
    cargo fuzz build --sanitizer "$sanitizer" "$t"
done
jobs_flag=()
if [ "$jobs" -gt 1 ]; then
    jobs_flag=(--jobs "$jobs")
fi

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    echo "=== $t: ${seconds}s (sanitizer: $sanitizer)" >&2
    # New inputs go to corpus/<t> (ignored by git); seeds/<t> is read only.
    # -timeout: one input running longer than 10 s counts as a hang.
    if ! cargo fuzz run --sanitizer "$sanitizer" "${jobs_flag[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo >&2
        echo "FAILED: $t. The input is in fuzz/artifacts/$t/; reproduce with" >&2
        echo "  cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t artifacts/$t/<file>" >&2
        echo "and minimise with" >&2
        echo "  cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin $t artifacts/$t/<file>" >&2
        exit 1
    fi
done
echo "all ${#targets[@]} targets ran ${seconds}s without a crash" >&2
