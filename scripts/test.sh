#!/usr/bin/env bash
# Set up on a bare machine and run the test-suite, the documentation build included
# (tests/test_docs.py). torch is pinned to the CPU build (2.13.0); an unpinned install
# would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check torch==2.13.0 -e ".[test,docs]"
python3 -m pytest "$@"
