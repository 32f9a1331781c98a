#!/usr/bin/env bash
# Set up on a bare machine and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check torch==2.13.0 -e ".[plot]"
python3 -m sklearn_attns demo "$@"
