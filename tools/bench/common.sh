# Shared by the tools/bench scripts (sourced, not run): system packages, the release CLI with
# the ffmpeg feature, the media folder, and the clip makers and timers both scripts use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash tools/install-deps.sh
cargo build --release --features ffmpeg -p framelock-tools 2>&1 | grep -v '^\s*Compiling' >&2 || true
fl=target/release/framelock
dir=${BENCH_DIR:-bench-media}
mkdir -p "$dir"

make_clip() { # name size seconds: framelock's own test card, made once
  local out="$dir/$1-$3s.mp4"
  [ -f "$out" ] || "$fl" gen-media "$out" --size "$2" --seconds "$3" >&2
  echo "$out"
}
make_high() { # src kbps: the same pictures as x264 High profile with B-frames (camera-like)
  local out="${1%.mp4}-x264high.mp4"
  [ -f "$out" ] || ffmpeg -v error -nostdin -y -i "$1" -c:v libx264 -preset veryfast -profile:v high \
      -bf 3 -b:v "$2k" -maxrate "$2k" -bufsize "$(( $2 * 2 ))k" -g 30 "$out"
  echo "$out"
}
frame_count() { # clip
  "$fl" probe "$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['video']['frame_count'])"
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
