#!/usr/bin/env bash
# The repository must stand alone: a newcomer clones only this repository, so no tracked file
# may need or cite anything outside it — no path that leaves the checkout (a sibling folder),
# no design or style document that is not in docs/, no ticket number a reader cannot look up.
# Prints each offending line and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

patterns=(
  '\.\./shared'                      # the folder beside the checkout
  '\.\./\.library'                   # the tool library beside the checkout
  '(^|[^a-z/])(STYLE|DESIGN|BROWSER-TESTING)\.md'   # documents that live outside docs/
  '[Ii]ssue[s]? #?[0-9]+'            # ticket numbers
  '\((the )?(roles|load|resilience|multi-node) issue'
)
status=0
for p in "${patterns[@]}"; do
  # Lock files and recorded benchmark output are generated, not written by us.
  if git grep -n -I -E -e "$p" -- . ':!Cargo.lock' ':!fuzz/Cargo.lock' ':!**/package-lock.json' \
       ':!load-tests/results/**' ':!tests/standalone.sh'; then
    status=1
  fi
done
if [ "$status" = 0 ]; then
  echo "standalone: no file cites anything outside the repository"
else
  echo "standalone: the lines above cite something outside the repository" >&2
fi
exit "$status"
