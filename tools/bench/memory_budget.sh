#!/usr/bin/env bash
# The memory budget (issue 17): every built-in scene and a mixed-format project (8 formats,
# 2 tracks) played at 256, 512 and 1024 MiB budgets, with peak RSS against the goal
# budget x 1.1 + 100 MiB. The 4K scene is also played from 540p proxies. A budget that cannot
# show the busiest frame is refused at open (the row says so).
#
#   bash tools/bench/memory_budget.sh [budgets...]     (default: 256 512 1024)
source "$(dirname "$0")/common.sh"
budgets=${*:-256 512 1024}
mix="$dir/mixed"
mkdir -p "$mix"
src=$(make_clip hd 1920x1080 4)
uhd=$(make_high "$(make_clip 4k 3840x2160 4)" 40000)
mk() { # name ffmpeg-args...: the 1080p test card re-encoded, made once
  local out="$mix/$1"; shift
  [ -f "$out" ] || ffmpeg -v error -nostdin -y -i "$src" "$@" "$out"
  echo "$out"
}
clips=(
  "$src"                                                                       # openh264 baseline
  "$uhd"                                                                       # 4K x264 High, B-frames
  "$(mk hevc.mp4 -c:v libx265 -preset ultrafast -tag:v hvc1 -x265-params log-level=none)"
  "$(mk h264-10bit.mp4 -c:v libx264 -preset veryfast -pix_fmt yuv420p10le)"
  "$(mk h264-422.mp4 -c:v libx264 -preset veryfast -pix_fmt yuv422p)"
  "$(mk prores-lt.mov -c:v prores_ks -profile:v 1)"
  "$(mk portrait.mp4 -vf transpose=2,scale=608:1080 -c:v libx264 -preset veryfast -metadata:s:v rotate=90)"
  "$(mk 720p60.mp4 -vf scale=1280:720 -r 60 -c:v libx264 -preset veryfast -profile:v main)"
)
python3 - "$mix/project.json" "${clips[@]}" <<'EOF'
import json, os, sys
out, clips = sys.argv[1], [os.path.abspath(c) for c in sys.argv[2:]]
sec = 60  # two seconds at 30 fps per clip
base = [{"media": c, "start": i * sec, "duration": sec, "source_in": 0} for i, c in enumerate(clips)]
# The overlay shows the clips in the opposite order, one second later: two formats at once.
top = [{"media": c, "start": i * sec + 30, "duration": sec, "source_in": 0}
       for i, c in enumerate(reversed(clips[:-1]))]
json.dump({"version": 2, "name": "mixed formats", "frame_rate": {"num": 30, "den": 1},
           "width": 1920, "height": 1080,
           "tracks": [{"name": "base", "opacity": 1.0, "clips": base},
                      {"name": "overlay", "opacity": 0.5, "clips": top}]}, open(out, "w"))
EOF
row() { # label budget bench-args...
  local label=$1 budget=$2; shift 2
  local json
  if json=$("$fl" bench "$@" --media-dir "$dir" --budget "$budget" --json 2>/tmp/memory_budget.err); then
    python3 - "$label" "$budget" "$json" <<'EOF'
import json, sys
label, budget, j = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
mib = lambda b: (b or 0) / 1048576
rss = mib(j["peak_rss_bytes"]); goal = budget * 1.1 + 100
print(f"| {label} | {budget} | {mib(j['pool_peak_bytes']):.0f} | {mib(j['decoder_bytes']):.0f} | "
      f"{rss:.0f} | {goal:.0f} | {'yes' if rss <= goal else 'NO'} | {j['achieved_fps']:.1f} | {j['dropped']} |")
EOF
  else
    echo "| $label | $budget | refused: $(tail -n1 /tmp/memory_budget.err | cut -c1-150) |||||||"
  fi
}
echo "| scene | budget MiB | accounted peak MiB | decoders at end MiB | peak RSS MiB | goal MiB | within | fps | dropped |"
echo "|---|---|---|---|---|---|---|---|---|"
for b in $budgets; do
  for scene in 1080p-1track 4k-3tracks-cuts scrub-random reverse; do
    row "$scene" "$b" "$scene"
  done
  row "4k-3tracks-cuts --proxy 540" "$b" 4k-3tracks-cuts --proxy 540
  row "mixed (8 formats, 2 tracks)" "$b" --scene-file "$mix/project.json"
done
