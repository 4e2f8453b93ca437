#!/usr/bin/env bash
# AV1 (rav1e at speed 10 and 6) against H.264 (openh264) on a generated 1080p 5 s clip, in one
# run: frames/s, file size and PSNR against the source frames (ffmpeg's psnr filter).
# Usage: bash tools/bench/av1_vs_h264.sh [SECONDS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-5}
size=${2:-1920x1080}
w=${size%x*}; h=${size#*x}
cargo build --release -q -p framelock-tools
bin=${CARGO_TARGET_DIR:-target}/release/framelock
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" gen-media "$dir/src.mp4" --size "$size" --seconds "$seconds" >/dev/null
frames=$((seconds * 30))
cat > "$dir/p.json" <<JSON
{"version":2,"frame_rate":{"num":30,"den":1},"width":$w,"height":$h,
 "tracks":[{"clips":[{"media":"$dir/src.mp4","start":0,"duration":$frames}]}]}
JSON
run() {
  local name=$1; shift
  local json
  json=$("$bin" render "$dir/p.json" -o "$dir/$name.mp4" --audio none --json --cpu-effects "$@" 2>/dev/null)
  local psnr
  psnr=$(ffmpeg -v error -i "$dir/$name.mp4" -i "$dir/src.mp4" -lavfi "[0:v][1:v]psnr" -f null - 2>&1 \
    | grep -o 'average:[0-9.inf]*' | head -1 || true)
  [ -n "$psnr" ] || psnr=$(ffmpeg -i "$dir/$name.mp4" -i "$dir/src.mp4" -lavfi "[0:v][1:v]psnr" -f null - 2>&1 | grep -o 'average:[0-9.inf]*' | head -1)
  python3 - "$name" "$json" "$psnr" <<'PY'
import json, sys
name, j, psnr = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
print(f"{name:10s} {j['fps']:7.2f} fps  {j['bytes']/1e6:7.2f} MB  PSNR {psnr.split(':')[-1]} dB  ({j['seconds']:.1f} s, {j['workers']} workers)")
PY
}
echo "$size, $frames frames, $(nproc) cores"
run h264
run av1-s10 --codec av1 --speed 10
run av1-s6 --codec av1 --speed 6
