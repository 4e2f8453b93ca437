#!/usr/bin/env bash
# 4K → 720p proxy generation speed of framelock against ffmpeg on the same files, in one run
# (ratios: these machines are shared and noisy).
#
#   bash tools/bench/proxy_vs_ffmpeg.sh              # 10 s clips
#   SECONDS_4K=4 bash tools/bench/proxy_vs_ffmpeg.sh # quicker
#
# Baseline: `ffmpeg -i in.mp4 -vf scale=-2:720 -c:v libx264 -preset ultrafast` (its default
# threads). framelock: `framelock proxy --res 720` with each codec, decoding with the fastest
# backend (libav with the ffmpeg feature) and with openh264 alone. Clips: framelock's own 4K test
# card and the same pictures as x264 High profile with B-frames at 53 Mb/s (camera-like).
# Wall time of the whole process each, proxy written and verified.
source "$(dirname "$0")/common.sh"
s4k=${SECONDS_4K:-10}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

own=$(make_clip 4k 3840x2160 "$s4k")
high=$(make_high "$own" 53000)

printf '%-26s %-28s %8s %8s %10s\n' clip maker fps "vs ff" "MB"
for clip in "$own" "$high"; do
  frames=$(frame_count "$clip")
  name=$(basename "$clip")
  t0=$(now)
  ffmpeg -v error -nostdin -y -i "$clip" -vf scale=-2:720 -c:v libx264 -preset ultrafast "$out/ff.mp4"
  t1=$(now)
  ff=$(calc "$frames / ($t1 - $t0)")
  printf '%-26s %-28s %8.1f %8s %10.1f\n' "$name" "ffmpeg ultrafast" "$ff" "1.00" \
    "$(calc "$(stat -c %s "$out/ff.mp4") / 1e6")"
  for backend in auto openh264; do
    for codec in h264 h264-intra; do
      rm -rf "$out/p"
      t0=$(now)
      "$fl" proxy "$clip" --res 720 --codec "$codec" --backend "$backend" --dir "$out/p" --json >/dev/null
      t1=$(now)
      fps=$(calc "$frames / ($t1 - $t0)")
      size=$(stat -c %s "$out/p/"*_720p.mp4)
      printf '%-26s %-28s %8.1f %8.2f %10.1f\n' "$name" "framelock $codec ($backend)" "$fps" \
        "$(calc "$fps / $ff")" "$(calc "$size / 1e6")"
    done
  done
done
