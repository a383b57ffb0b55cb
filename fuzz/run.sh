#!/usr/bin/env bash
# Runs one SharpFuzz target under AFL++ for a bounded time, then prints its statistics and replays
# any crash it saved through the harness (so the failure is shown as a .NET exception).
#
#   fuzz/run.sh TARGET SECONDS        e.g. fuzz/run.sh connect-head 600
#   fuzz/run.sh --list
#
# Needs: the .NET SDK, afl-fuzz (Debian: apt-get install afl++) and the sharpfuzz instrumenter
# (dotnet tool install --global SharpFuzz.CommandLine). Without afl-fuzz it falls back to the
# harness's plain in-process mutation loop (no coverage feedback), and says so.
# Output (ignored by git): fuzz/findings/build (instrumented build), fuzz/findings/TARGET (AFL++ state).
# FUZZ_BUILD=DIR puts the instrumented build elsewhere (e.g. one per commit, so a rebuild never replaces the
# assemblies of a run still going).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${FUZZ_BUILD:-$here/findings/build}"
plain="$build-plain"
export PATH="$PATH:$HOME/.dotnet/tools" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if [[ ! -f "$build/.instrumented" ]]; then
  rm -rf "$build"
  dotnet build "$here/ProxyGuard.Fuzz/ProxyGuard.Fuzz.csproj" -c Release -o "$build" -p:PG_SLOT= -p:UseArtifactsOutput=false >/dev/null
  # An uninstrumented copy: instrumented assemblies crash outside afl-fuzz (no shared memory), so replays use this.
  rm -rf "$plain" && cp -r "$build" "$plain"
  if command -v sharpfuzz >/dev/null 2>&1; then
    # Instrument the code under test (and the YAML parser the policy loader sits on).
    for asm in ProxyGuard.Policy ProxyGuard.Inspection ProxyGuard.Secrets ProxyGuard.Engine YamlDotNet; do
      sharpfuzz "$build/$asm.dll" >/dev/null
    done
    touch "$build/.instrumented"
  fi
fi

if [[ "${1:-}" == "--list" ]]; then
  exec dotnet "$build/ProxyGuard.Fuzz.dll" --list
fi

target="${1:?usage: fuzz/run.sh TARGET SECONDS}"
seconds="${2:?usage: fuzz/run.sh TARGET SECONDS}"
corpus="$here/corpus/$target"
[[ -d "$corpus" ]] || { echo "fuzz/run.sh: no seed corpus $corpus" >&2; exit 2; }

if ! command -v afl-fuzz >/dev/null 2>&1 || [[ ! -f "$build/.instrumented" ]]; then
  echo "fuzz/run.sh: afl-fuzz or sharpfuzz missing: running the uninstrumented mutation loop instead" >&2
  exec dotnet "$plain/ProxyGuard.Fuzz.dll" --mutate "$target" "$seconds" "$corpus"
fi

out="$here/findings/$target"
mkdir -p "$out"
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
# -t: per-input timeout (ms; the .NET runtime's first input includes JIT), -m none: the CLR reserves a lot of
# virtual memory, -V: stop after SECONDS. A second run resumes from the saved queue.
resume=()
[[ -d "$out/default/queue" ]] && resume=(-i -) || resume=(-i "$corpus")
if ! afl-fuzz "${resume[@]}" -o "$out" -t 5000 -m none -V "$seconds" -- dotnet "$build/ProxyGuard.Fuzz.dll" "$target" >"$out/afl.log" 2>&1; then
  if grep -q "No instrumentation detected" "$out/afl.log"; then
    # Seen for targets whose hot code sharpfuzz leaves uninstrumented (scan-identity, scan-gzip, scan-br): fall
    # back to the plain mutation loop rather than not fuzzing at all.
    echo "fuzz/run.sh: $target: AFL++ sees no instrumentation; running the uninstrumented mutation loop instead" >&2
    exec dotnet "$plain/ProxyGuard.Fuzz.dll" --mutate "$target" "$seconds" "$corpus"
  fi
  echo "fuzz/run.sh: afl-fuzz failed, see $out/afl.log" >&2; tail -20 "$out/afl.log" >&2; exit 1
fi

stats="$out/default/fuzzer_stats"
get() { awk -F' *: *' -v k="$1" '$1==k {print $2}' "$stats"; }
echo "$target: run_time=$(get run_time)s execs=$(get execs_done) execs_per_sec=$(get execs_per_sec) corpus=$(get corpus_count) edges=$(get edges_found) bitmap=$(get bitmap_cvg) crashes=$(get saved_crashes) hangs=$(get saved_hangs)"

crashes=("$out"/default/crashes/id:*)
if [[ -e "${crashes[0]}" ]]; then
  echo "$target: replaying saved crashes:" >&2
  dotnet "$plain/ProxyGuard.Fuzz.dll" --replay "$target" "${crashes[@]}" >&2 || true
  exit 1
fi
