#!/usr/bin/env bash
# The whole test suite: typecheck, lint (module boundaries: eslint.config.js), unit, kernel, e2e (needs root and dist/bin),
# then the l2 tier, which boots user-mode-linux for what this kernel lacks
# (802.1q, bridge VLAN filtering, dummy, bonding): test/l2/runner.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist/bin ] || npm run build
npx tsc --noEmit -p .
# Lint with the checkout's eslint only (npx would fetch another one): a tree installed before it came needs npm ci.
[ -x node_modules/.bin/eslint ] || { echo "node_modules has no eslint: run npm ci" >&2; exit 1; }
node_modules/.bin/eslint --max-warnings 0 .
npx jest --selectProjects unit
npx jest --selectProjects kernel e2e --runInBand
l2_status=$(mktemp)
trap 'rm -f "$l2_status"' EXIT
rc=0
NODE_CNI_L2_STATUS="$l2_status" npx jest --selectProjects l2 || rc=$?
echo "l2 tier (user-mode-linux): $(cat "$l2_status" 2>/dev/null || echo 'no status written')"
exit "$rc"
