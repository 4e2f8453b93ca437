#!/usr/bin/env bash
# Distributed render on this machine: a local export (one process, --workers 0) against the
# farm (nats-server on loopback, 1, 2 and 3 `framelock worker` processes), in one run, on a
# generated clip. Prints per run: wall time, frames/s and the ratio to the local export; for
# the farm, the coordination overhead per segment (node: serialise + upload + publish;
# coordinator: download + decode) and the bytes on the wire per segment; then the speed-up
# expected at 10 nodes from the measured per-segment cost, and what lz4/zstd save on what
# is shipped.
# Usage: bash tools/bench/farm.sh [SECONDS] [SIZE] [SEGMENT_FRAMES]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
size=${2:-1920x1080}
seg=${3:-30}
w=${size%x*}; h=${size#*x}
cargo build --release -q -p framelock-tools
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/framelock")
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
"$bin" gen-media "$dir/src.mp4" --size "$size" --seconds "$seconds" --audio >/dev/null
frames=$((seconds * 30))
# A cut list: a cut every 10 frames, each cut from another place in the clip.
python3 - "$dir" "$w" "$h" "$frames" <<'PY'
import json, sys
d, w, h, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
clips = [{"media": f"{d}/src.mp4", "start": s, "duration": 10, "source_in": (s * 7) % (frames - 10)}
         for s in range(0, frames, 10)]
json.dump({"version": 2, "frame_rate": {"num": 30, "den": 1}, "width": w, "height": h,
           "tracks": [{"clips": clips}]}, open(f"{d}/p.json", "w"))
# and a big project (2000 cuts over 4 tracks), for what lz4 saves on a snapshot
big = [{"clips": [{"media": f"{d}/src.mp4", "start": s * 10, "duration": 10, "source_in": s % 290}
                  for s in range(500)]} for _ in range(4)]
json.dump({"version": 2, "frame_rate": {"num": 30, "den": 1}, "width": w, "height": h,
           "tracks": big}, open(f"{d}/big.json", "w"))
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="nats://127.0.0.1:$port"
nats=$(command -v nats-server || echo /usr/sbin/nats-server)  # Debian puts it in /usr/sbin
"$nats" -a 127.0.0.1 -p "$port" -js -sd "$dir/store" >"$dir/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
common=(--segment-frames "$seg" --cpu-effects --audio opus --json)
echo "$size, $frames frames in segments of $seg, $(nproc) cores"
"$bin" render "$dir/p.json" -o "$dir/local.mp4" "${common[@]}" >"$dir/local.json" 2>/dev/null
for n in 1 2 3; do
  node_pids=()
  for i in $(seq "$n"); do
    "$bin" worker --nats "$url" --id "n$i" 2>"$dir/n$n-$i.log" &  # one slot per core
    node_pids+=($!); pids+=($!)
  done
  for i in $(seq "$n"); do
    for _ in $(seq 300); do grep -q ready "$dir/n$n-$i.log" 2>/dev/null && break; sleep 0.1; done
  done
  "$bin" render "$dir/p.json" -o "$dir/farm$n.mp4" "${common[@]}" --nats "$url" >"$dir/farm$n.json" 2>/dev/null
  cmp -s "$dir/farm$n.mp4" "$dir/local.mp4" && echo same >"$dir/farm$n.same" || echo DIFFERENT >"$dir/farm$n.same"
  for p in "${node_pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  sleep 0.5
done
# What compression would save on what is shipped: a segment result is H.264 (already
# compressed); the mdat of the file stands in for all of them.
lz4 -q -1 -c "$dir/local.mp4" | wc -c >"$dir/lz4.size"
zstd -q -3 -c "$dir/local.mp4" | wc -c >"$dir/zstd.size"
lz4 -q -1 -c "$dir/big.json" | wc -c >"$dir/big.lz4"
python3 - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
local = json.load(open(f"{d}/local.json"))
print(f"local export    {local['seconds']:6.2f} s  {local['fps']:6.1f} fps  ({local['workers']} workers in one process)")
one = None
for n in (1, 2, 3):
    r = json.load(open(f"{d}/farm{n}.json"))
    f = r["farm"]
    same = open(f"{d}/farm{n}.same").read().strip()
    segs = r["segments"]
    wire = (f["result_bytes"] + f["message_bytes"]) / segs
    share = " ".join(f"{x['node']['id']}:{x['segments']}" for x in f["nodes"])
    print(f"farm, {n} node{'s' if n > 1 else ' '} {r['seconds']:6.2f} s  {r['fps']:6.1f} fps  {r['fps']/local['fps']:.2f}x local  "
          f"overhead {f['overhead_ms_per_segment']:5.1f} ms/segment  {wire/1e3:7.1f} kB/segment on the wire  "
          f"snapshot {f['snapshot_bytes']} B -> {f['snapshot_stored']} B lz4  [{share}]  bytes {same}")
    if n == 1:
        one = r
segs = one["segments"]
t_node = one["seconds"] / segs                                    # one node (all its slots) per segment
c = one["mux_seconds"] / segs + one["farm"]["download_ms_per_segment"] / 1000   # the coordinator's serial share
shipped = (one["farm"]["result_bytes"] + one["farm"]["message_bytes"]) / segs
n = 10
bound = t_node / max(c, 1e-9)
print(f"on paper, 10 nodes like this one: a node takes {t_node*1000:.0f} ms per segment (wall, its slots together), "
      f"the coordinator {c*1000:.1f} ms per segment serial (download + decode + mux) -> speed-up min(10, {bound:.0f}) = {min(n, bound):.1f}x, "
      f"{n*shipped*8/t_node/1e6:.0f} Mb/s into the coordinator")
res_raw, res = one["farm"]["result_raw_bytes"], one["farm"]["result_bytes"]
print(f"segment results: {res_raw} B postcard -> {res} B shipped (lz4 where it saves a tenth: {100*(1-res/res_raw):.1f}% saved)")
bigraw = os.path.getsize(f"{d}/big.json")
biglz = int(open(f"{d}/big.lz4").read())
print(f"a 2000-cut project's JSON: {bigraw} B -> lz4 -1 {biglz} B ({100*(1-biglz/bigraw):.0f}% saved; the snapshot uses the same LZ4 block format via lz4_flex)")
raw = os.path.getsize(f"{d}/local.mp4")
lz, zs = int(open(f"{d}/lz4.size").read()), int(open(f"{d}/zstd.size").read())
print(f"the whole file ({raw} B, H.264 + Opus): lz4 -1 saves {100*(1-lz/raw):.1f}%, zstd -3 {100*(1-zs/raw):.1f}%")
PY
