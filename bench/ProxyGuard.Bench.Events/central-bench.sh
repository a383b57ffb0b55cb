#!/bin/sh
# Sustained events/s into PostgreSQL from three replicas: starts a throw-away PostgreSQL (initdb in a temp dir,
# loopback, a free port; as the postgres user when run as root), runs the benchmark against it, stops it.
# Usage: bench/ProxyGuard.Bench.Events/central-bench.sh [--seconds 10] [--replicas 3] [--producers 6]
# The last line ("RESULT central-events: N events/s sustained into PostgreSQL from 3 replicas ...") is the figure;
# `central-bench.sh | tail -1` prints only it.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/pg-bench-pg-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
as_pg "$bin/initdb" -D "$dir/data" -U proxyguard --auth=trust -E UTF8 --no-locale >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=100 -c shared_buffers=64MB" start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null; rm -rf "$dir"' EXIT
dotnet run -c Release --project "$(dirname "$0")" -- --central "postgres://proxyguard@127.0.0.1:$port/postgres" "$@"
