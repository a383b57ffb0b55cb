#!/usr/bin/env bash
# Bounded loopback soak of proxyguard (see docs/reliability.md).
#   bench/soak/run.sh [SECONDS] [CONCURRENCY]      default 600 s, 8 workers
# Prints a Markdown report; exit 1 on any unexpected result, a missing event, or a proxy that died.
# Extra options after the two numbers go to the program (--warmup S, default 120; --sample S, default 10).
# With dotnet-counters installed (dotnet tool install -g dotnet-counters; or DOTNET_COUNTERS=path) the report
# splits memory into the managed heap and native memory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build "$here/ProxyGuard.Soak/ProxyGuard.Soak.csproj" -c Release -o "$here/../results/soak-build" -p:UseArtifactsOutput=false >/dev/null
exec dotnet "$here/../results/soak-build/ProxyGuard.Soak.dll" --seconds "${1:-600}" --concurrency "${2:-8}" "${@:3}"
