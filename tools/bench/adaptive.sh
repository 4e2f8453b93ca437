#!/usr/bin/env bash
# Adaptive quality (issue 16): the 4K three-track scene on originals with the quality
# controller and with --no-adapt (the baseline, same run), then 100 random seeks on the 1080p
# GOP-30 clip: time to the first picture and to the exact frame, against one GOP's decode
# measured in the same run.
source "$(dirname "$0")/common.sh"
for mode in "" "--no-adapt"; do
  echo "== bench 4k-3tracks-cuts ${mode:-(adaptive)}"
  "$fl" bench 4k-3tracks-cuts --media-dir "$dir" $mode
done
for mode in "" "--no-adapt"; do
  echo "== bench scrub-random ${mode:-(adaptive)}"
  "$fl" bench scrub-random --media-dir "$dir" $mode
done
