#!/usr/bin/env bash
# System packages framelock's build, tests and benchmarks need (Debian):
#   libopus-dev   Opus audio for export (linked by the `opus` crate)
#   libasound2-dev  ALSA, for sound on the output device (`cpal` feature, on in the CLI)
#   nasm          openh264's assembly (without it the build silently falls back to C, 1.2-1.7x slower)
#   ffmpeg        the independent reference encoder/decoder used by tests and benchmarks
#   libav*-dev, pkg-config, clang, libclang-dev   the optional `ffmpeg` decoder backend (bindgen)
#   nats-server   distributed render's tests (JetStream on loopback, started by the tests)
#   mesa-vulkan-drivers, libvulkan1   Mesa's software Vulkan (lavapipe): the GPU path's tests run
#                 on it when the machine has no GPU
#   bsdutils      `script`: a pseudo-terminal for the test of `framelock monitor`
set -euo pipefail
packages=(nasm libopus-dev libasound2-dev ffmpeg pkg-config clang libclang-dev
          libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
          libavfilter-dev libavdevice-dev mesa-vulkan-drivers libvulkan1 nats-server
          bsdutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
