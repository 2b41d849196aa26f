#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need, type-checks the code, then runs all tests.
#
# - torch is pinned to the CPU build that lies on this machine's disk; an
#   unpinned torch would download a multi-GB CUDA build.
# - JACK (Debian's jackd2) gives the real-port tests real MIDI ports; the
#   tests start and stop their own server (dummy driver, no realtime).
# - Debian's chromium, driven by Playwright (the dev extra), opens the status
#   page in a real browser; Playwright's own browser download is never needed.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m jack` or `-m "not jack"`.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python3 -m pip install --quiet --disable-pip-version-check -e ".[train,dev]"

missing=()
if ! command -v jackd >/dev/null 2>&1 || ! command -v jack_wait >/dev/null 2>&1; then
    missing+=(jackd2)  # the real-port tests
fi
if ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)  # the status page's browser tests (Playwright drives it; it cannot download one)
fi
if ((${#missing[@]})); then
    echo "tests/run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Types of the core and the wings (configured in pyproject's [tool.mypy]) before the tests.
python3 -m mypy

export AFFETTO_REQUIRE_JACK=1
exec python3 -m pytest -q "$@"
