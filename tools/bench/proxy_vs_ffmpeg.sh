#!/usr/bin/env bash
# 4K → 720p proxy generation speed of framelock against ffmpeg making the same kind of proxy
# from the same files, in one run (ratios: these machines are shared and noisy).
#
#   bash tools/bench/proxy_vs_ffmpeg.sh              # 10 s clips
#   SECONDS_4K=4 bash tools/bench/proxy_vs_ffmpeg.sh # quicker
#
# Each framelock codec against its ffmpeg counterpart (ffmpeg's default threads):
#   h264        vs -c:v libx264 -preset ultrafast
#   h264-intra  vs -c:v libx264 -preset ultrafast -g 1
#   prores      vs -c:v prores_ks -profile:v 0 (ProRes 422 Proxy, in a .mov)
# framelock decodes with the fastest backend (libav with the ffmpeg feature, the deblocking
# filter skipped for this 3x shrink), then again with `--full-decode` (the filter on) and with
# openh264 alone (the default build). The last line per clip is the luma PSNR between the
# skip-deblock and the full-decode h264 proxies. Clips: framelock's own 4K test card and the
# same pictures as x264 High profile with B-frames at 53 Mb/s (camera-like). Wall time of the
# whole process each, proxy written and verified.
source "$(dirname "$0")/common.sh"
s4k=${SECONDS_4K:-10}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

own=$(make_clip 4k 3840x2160 "$s4k")
high=$(make_high "$own" 53000)

ffmpeg_args() { # codec → ffmpeg's counterpart
  case $1 in
    h264) echo "-c:v libx264 -preset ultrafast" ;;
    h264-intra) echo "-c:v libx264 -preset ultrafast -g 1" ;;
    prores) echo "-c:v prores_ks -profile:v 0" ;;
  esac
}
timed() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); calc "$t1 - $t0"; }

printf '%-24s %-36s %8s %8s %8s\n' clip maker fps "vs ff" "MB"
for clip in "$own" "$high"; do
  frames=$(frame_count "$clip")
  name=$(basename "$clip")
  for codec in h264 h264-intra prores; do
    ext=mp4; [ "$codec" = prores ] && ext=mov
    # shellcheck disable=SC2046
    secs=$(timed ffmpeg -v error -nostdin -y -i "$clip" -vf scale=-2:720 $(ffmpeg_args "$codec") "$out/ff.$ext")
    ff=$(calc "$frames / $secs")
    printf '%-24s %-36s %8.1f %8s %8.1f\n' "$name" "ffmpeg ($codec kind)" "$ff" "1.00" \
      "$(calc "$(stat -c %s "$out/ff.$ext") / 1e6")"
    runs=("auto" "auto --full-decode")
    [ "$codec" != prores ] && runs+=("openh264")
    for run in "${runs[@]}"; do
      read -r backend extra <<<"$run"
      dir="$out/$name-$codec-$backend${extra:+-full}"
      # shellcheck disable=SC2086
      secs=$(timed "$fl" proxy "$clip" --res 720 --codec "$codec" --backend "$backend" $extra \
        --dir "$dir" --json)
      fps=$(calc "$frames / $secs")
      size=$(stat -c %s "$dir/"*_720p*."$ext")
      printf '%-24s %-36s %8.1f %8.2f %8.1f\n' "$name" "framelock $codec ($backend${extra:+, full decode})" \
        "$fps" "$(calc "$fps / $ff")" "$(calc "$size / 1e6")"
    done
  done
  psnr=$(ffmpeg -nostdin -i "$out/$name-h264-auto/"*_720p.mp4 -i "$out/$name-h264-auto-full/"*_720p.mp4 \
    -lavfi psnr -f null - 2>&1 | grep -o 'PSNR y:[0-9.inf]*' | cut -d: -f2)
  printf '%-24s skip-deblock vs full-decode h264 proxy: luma PSNR %s dB\n' "$name" "$psnr"
done
