#!/usr/bin/env bash
# The whole test suite: typecheck, unit, kernel, e2e (needs root and dist/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist/bin ] || npm run build
npx tsc --noEmit -p .
npx jest --selectProjects unit
npx jest --selectProjects kernel e2e --runInBand
