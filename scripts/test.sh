#!/usr/bin/env bash
# The test suite: fast unit tests and real-engine tests (marker "engine"), in one pytest run.
# Expects what .ci/run prepares (dockerd, the local base image, the dockyard-test account).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 -m pytest -q -p no:cacheprovider "$@"
