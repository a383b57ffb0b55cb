#!/usr/bin/env bash
# Runs every fuzz target briefly (default 15 s each) with fuzz/run.sh. CI's own smoke is the in-process replay
# of the committed seed corpora in tests/ProxyGuard.PropertyTests (FuzzCorpusReplayTests), which needs no AFL++.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-15}"
status=0
for target in $("$here/run.sh" --list); do
  "$here/run.sh" "$target" "$seconds" || status=1
done
exit $status
