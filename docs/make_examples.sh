#!/usr/bin/env bash
# Render one example per emotion to listen to before installing: MIDI, a piano roll and an Ogg Vorbis
# file per quadrant, in docs/examples/. Installs FluidSynth and Debian's General MIDI soundfont
# (FluidR3) for the rendering only; affetto itself never needs them.
#   bash docs/make_examples.sh [--model M.onnx]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v fluidsynth >/dev/null || ! command -v oggenc >/dev/null || [ ! -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends fluidsynth fluid-soundfont-gm vorbis-tools >/dev/null
fi
exec python3 docs/examples.py --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 "$@"
