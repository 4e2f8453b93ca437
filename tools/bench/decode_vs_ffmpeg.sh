#!/usr/bin/env bash
# Decode throughput of framelock against ffmpeg on the same clips, in one run (ratios, not
# absolute figures: these machines are shared and noisy).
#
#   bash tools/bench/decode_vs_ffmpeg.sh            # 1080p and 4K, 10 s each
#   SECONDS_1080=4 SECONDS_4K=2 bash tools/bench/decode_vs_ffmpeg.sh   # quicker
#
# Clips (made once, kept in bench-media/): framelock's own test card (openh264's Constrained
# Baseline encoder), and the same pictures re-encoded by libx264 as High profile with B-frames
# (the camera-like case). For each: ffmpeg -threads 1 and -threads 2 (`-f null`), framelock
# sequential (one decoder, frame by frame: playback) and parallel (one decoder instance per
# core over GOP ranges: proxies/export), with each built backend.
source "$(dirname "$0")/common.sh"
s1080=${SECONDS_1080:-10}
s4k=${SECONDS_4K:-10}

ffmpeg_fps() { # clip threads frames
  local t0 t1
  t0=$(now)
  ffmpeg -v error -nostdin -threads "$2" -i "$1" -f null - </dev/null
  t1=$(now)
  calc "$3 / ($t1 - $t0)"
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

c1080=$(make_clip 1080p 1920x1080 "$s1080")
c4k=$(make_clip 4k 3840x2160 "$s4k")
h1080=$(make_high "$c1080" 12000)
h4k=$(make_high "$c4k" 53000)

printf '%-34s %-9s %9s %9s %9s %8s %8s\n' clip decoder fps "vs ff-t1" "vs ff-t2" "p50 ms" "p99 ms"
for clip in "$c1080" "$h1080" "$c4k" "$h4k"; do
  frames=$(frame_count "$clip")
  ff1=$(ffmpeg_fps "$clip" 1 "$frames")
  ff2=$(ffmpeg_fps "$clip" 2 "$frames")
  name=$(basename "$clip")
  printf '%-34s %-9s %9.1f %9s %9.2f\n' "$name" "ffmpeg-t1" "$ff1" "1.00" "$(calc "$ff1/$ff2")"
  printf '%-34s %-9s %9.1f %9.2f %9s\n' "$name" "ffmpeg-t2" "$ff2" "$(calc "$ff2/$ff1")" "1.00"
  for backend in openh264 ffmpeg; do
    out=$("$fl" decode-bench "$clip" --backend "$backend" --json --workers 2)
    seq=$(echo "$out" | json_field sequential_fps)
    par=$(echo "$out" | json_field parallel_fps)
    p50=$(echo "$out" | json_field frame_ms_p50)
    p99=$(echo "$out" | json_field frame_ms_p99)
    printf '%-34s %-9s %9.1f %9.2f %9.2f %8.2f %8.2f\n' "$name" "fl-$backend" "$seq" \
      "$(calc "$seq/$ff1")" "$(calc "$seq/$ff2")" "$p50" "$p99"
    printf '%-34s %-9s %9.1f %9.2f %9.2f\n' "$name" "fl-${backend:0:3}-x2" "$par" \
      "$(calc "$par/$ff1")" "$(calc "$par/$ff2")"
  done
done
