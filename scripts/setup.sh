#!/usr/bin/env bash
# Create .venv with pge-sam (editable) with every extra (.[all]: napari, samples, cache, bench, train),
# the test tools (.[test]) and the pinned torch pair.
# As root with apt-get available, also installs Xvfb + Mesa for the napari GUI tests and cmake (the Slicer
# extension's CMake is tested with Slicer's macros stubbed).
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null && ! command -v xvfb-run > /dev/null; then
  echo "== installing Xvfb and Mesa (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends xvfb xauth libgl1-mesa-dri libegl1 libgl1 libxkbcommon-x11-0 \
    libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
    libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1 cmake > /dev/null
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
echo "== installing pge-sam[all,test] with the pinned torch pair (constraints.txt)"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[all,test]"
