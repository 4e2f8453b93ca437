#!/usr/bin/env bash
# Runs a fuzz target of fuzz/ (demux, probe or decode) for a number of seconds with libFuzzer
# (nightly Rust; the flags cargo-fuzz passes, so `cargo fuzz run TARGET` works the same where
# cargo-fuzz is installed). Seeds: a generated clip and a cut copy. Crashes land in
# fuzz/artifacts/TARGET/.
#   bash tools/fuzz.sh [demux|probe|decode] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-demux}
seconds=${2:-60}
corpus=fuzz/corpus/$target
mkdir -p "$corpus" "fuzz/artifacts/$target"
if [ -z "$(ls -A "$corpus")" ]; then
  [ -x target/release/framelock ] || cargo build --release -p framelock-tools >&2
  target/release/framelock gen-media "$corpus/seed.mp4" --size 64x36 --seconds 0.3 >&2
  head -c 2000 "$corpus/seed.mp4" > "$corpus/cut.mp4"
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the coverage flags off build scripts and proc macros.
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
cargo +nightly build --release --manifest-path fuzz/Cargo.toml --bin "$target" --target "$triple" >&2
fuzz/target/"$triple"/release/"$target" "$corpus" -artifact_prefix="fuzz/artifacts/$target/" \
  -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10
