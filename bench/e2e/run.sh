#!/bin/bash
# End-to-end benchmark, one command: starts a loopback TLS origin (nginx), the peers that are
# installed (Squid ssl-bump, mitmproxy), ProxyGuard twice (minimal and realistic policy, Release
# build), then drives the same load direct and through each of them in ONE run, and writes a
# markdown table to bench/results/e2e-<time>.md (also printed). See docs/performance.md.
#
# Environment (all optional):
#   BENCH_SECONDS=8      seconds per (scenario, target) for time-bound scenarios
#   BENCH_HOSTS=48       distinct host names (h1..hN.origin.test) in the handshake-heavy scenario
#   BENCH_TUNNELS=5000   idle intercepted tunnels to hold (0 skips that test)
#   BENCH_TARGETS="direct pg-minimal pg-realistic squid mitmproxy"
#   BENCH_SCENARIOS="cold ka16 ka64 handshake h2 download upload plain"
#                        cold: each proxy restarted (its CA kept, a fresh data directory), the time from process
#                        start to the first served HTTPS request, then the first BENCH_COLD_SECONDS (10) of
#                        keep-alive load with no warm-up; runs before the warm-up
#   BENCH_WARMUP=30      seconds of keep-alive warm-up per proxy before measuring (tiered JIT + PGO)
#   BENCH_NO_BUILD=1     reuse the existing Release build
#   PGB_DIR=/tmp/pg-bench   work directory (certificates, configs, logs, raw outputs)
#   BENCH_ROUNDS=1       rounds per time-bound scenario (targets alternate; the report shows each target's median round)
#   PG_BASELINE_DLL=path    another build's proxyguard.dll (e.g. an older commit, built elsewhere): adds target
#                           "pg-baseline" (realistic policy) measured side by side with "pg-realistic" in the same run
# Needs hey, openssl, python3, nginx; squid and mitmdump are skipped when missing. Runs as root for
# the /etc/hosts entries of the benchmark names (removed on exit).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
D=${PGB_DIR:-/tmp/pg-bench}; OUT=$D/out
DUR=${BENCH_SECONDS:-8}; HOSTS=${BENCH_HOSTS:-48}; TUNNELS=${BENCH_TUNNELS:-5000}
TARGETS=${BENCH_TARGETS:-"direct pg-minimal pg-realistic squid mitmproxy"}
SCENARIOS=${BENCH_SCENARIOS:-"cold ka16 ka64 handshake h2 download upload plain"}
ORIGIN_TLS=19443; ORIGIN_PLAIN=19080; SQUID_PORT=13128; MITM_PORT=18081
PG_MIN_PORT=18180; PG_MIN_ADMIN=18190; PG_REAL_PORT=18181; PG_REAL_ADMIN=18191; PG_BASE_PORT=18182; PG_BASE_ADMIN=18192
PLACEHOLDER=PGBENCH_PLACEHOLDER_TOKEN_0001
export PG_BENCH_TOKEN=synthetic-bench-token-not-a-secret-0123456789
export PROXYGUARD_LIMIT_MAX_CONNECTIONS_PER_CLIENT=20000
MARK="# pg-bench (bench/e2e/run.sh)"
declare -A PID PROXY CA ADMIN START

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
for tool in hey openssl python3 nginx curl; do
  command -v $tool >/dev/null || { echo "run.sh: $tool is required" >&2; exit 2; }
done

cleanup() {
  for name in "${!PID[@]}"; do
    kill "${PID[$name]}" 2>/dev/null
  done
  sleep 1
  for name in "${!PID[@]}"; do
    kill -0 "${PID[$name]}" 2>/dev/null && kill -9 "${PID[$name]}" 2>/dev/null
  done
  if grep -qF "$MARK" /etc/hosts; then
    grep -vF "$MARK" /etc/hosts > "$D/hosts.tmp" && cat "$D/hosts.tmp" > /etc/hosts
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -ltn | grep -q ":$1 "; }
wait_port() { for _ in $(seq 1 ${2:-60}); do port_free "$1" || return 0; sleep 0.5; done; return 1; }
subst() { sed -e "s#@D@#$D#g" -e "s#@ORIGIN_TLS@#$ORIGIN_TLS#g" -e "s#@ORIGIN_PLAIN@#$ORIGIN_PLAIN#g" -e "s#@SQUID@#$SQUID_PORT#g" "$1"; }

mkdir -p "$D"; rm -rf "$OUT"; mkdir -p "$OUT"
"$here/gen-certs.sh" "$D" || exit 2
names="origin.test"; for i in $(seq 1 "$HOSTS"); do names+=" h$i.origin.test"; done
if ! grep -qF "$MARK" /etc/hosts; then
  for n in $names; do echo "127.0.0.1 $n $MARK"; done >> /etc/hosts
fi

for p in $ORIGIN_TLS $ORIGIN_PLAIN $SQUID_PORT $MITM_PORT $PG_MIN_PORT $PG_MIN_ADMIN $PG_REAL_PORT $PG_REAL_ADMIN $PG_BASE_PORT $PG_BASE_ADMIN; do
  port_free $p || { echo "run.sh: port $p is in use (another benchmark running?)" >&2; exit 2; }
done

# Origin.
subst "$here/nginx.conf.in" > "$D/nginx.conf"
setsid nginx -c "$D/nginx.conf" >"$D/nginx.out" 2>&1 & PID[origin]=$!
wait_port $ORIGIN_TLS || { echo "origin did not start:" >&2; cat "$D/nginx.out" "$D/nginx-error.log" >&2; exit 2; }
PROXY[direct]=""; CA[direct]=$D/origin-ca.pem

# Peers (skipped cleanly when not installed).
if [[ " $TARGETS " == *" squid "* ]] && command -v squid >/dev/null && [[ -x /usr/lib/squid/security_file_certgen ]]; then
  subst "$here/squid.conf.in" > "$D/squid.conf"
  rm -rf "$D/squid-ssl-db"; /usr/lib/squid/security_file_certgen -c -s "$D/squid-ssl-db" -M 16MB >/dev/null
  chown -R proxy:proxy "$D/squid-ssl-db" 2>/dev/null; chmod 755 "$D"
  start_squid() { setsid squid -N -f "$D/squid.conf" >"$D/squid.out" 2>&1 & PID[squid]=$!; }
  start_squid
  PROXY[squid]=http://127.0.0.1:$SQUID_PORT; CA[squid]=$D/squid-ca.pem
else
  log "squid not installed (or not requested): skipped"; TARGETS=${TARGETS/squid/}
fi
if [[ " $TARGETS " == *" mitmproxy "* ]] && command -v mitmdump >/dev/null; then
  mkdir -p "$D/mitm"
  setsid mitmdump -q -p $MITM_PORT --listen-host 127.0.0.1 --set confdir="$D/mitm" \
    --set ssl_verify_upstream_trusted_ca="$D/origin-ca.pem" >"$D/mitm.out" 2>&1 & PID[mitmproxy]=$!
  PROXY[mitmproxy]=http://127.0.0.1:$MITM_PORT; CA[mitmproxy]=$D/mitm/mitmproxy-ca-cert.pem
else
  log "mitmproxy not installed (or not requested): skipped"; TARGETS=${TARGETS/mitmproxy/}
fi

# ProxyGuard (Release), twice.
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
  log "building ProxyGuard (Release)"
  (cd "$root" && dotnet build -c Release src/ProxyGuard -nologo -v q >"$D/build.log" 2>&1) || { tail -30 "$D/build.log" >&2; exit 2; }
fi
if [[ -n ${PG_SLOT:-} ]]; then dll=$root/.artifacts/$PG_SLOT/bin/ProxyGuard/release/proxyguard.dll
else dll=$root/src/ProxyGuard/bin/Release/net10.0/proxyguard.dll; fi
[[ -f $dll ]] || { echo "run.sh: $dll not found" >&2; exit 2; }
"$here/policies.sh" "$D" $ORIGIN_TLS $ORIGIN_PLAIN
resolve=(); for n in $names; do resolve+=(--resolve "$n=127.0.0.1"); done
start_pg() { # name policy port admin [dll]   (KEEP_CA=1: reuse the CA the first start made)
  rm -rf "$D/$1-data"; [[ -n ${KEEP_CA:-} ]] || { rm -rf "$D/$1-ca"; mkdir -p -m 700 "$D/$1-ca"; }
  START[$1]="$*"
  PROXYGUARD_ADMIN_TOKEN=bench-admin-token setsid dotnet "${5:-$dll}" run --policy "$D/$2.yaml" --listen 127.0.0.1:$3 --admin 127.0.0.1:$4 \
    --ca-dir "$D/$1-ca" --data-dir "$D/$1-data" "${resolve[@]}" >"$D/$1.out" 2>&1 & PID[$1]=$!
  PROXY[$1]=http://127.0.0.1:$3; CA[$1]=$D/$1-ca/ca.pem; ADMIN[$1]=$4
}
[[ " $TARGETS " == *" pg-minimal "* ]] && start_pg pg-minimal minimal $PG_MIN_PORT $PG_MIN_ADMIN
[[ " $TARGETS " == *" pg-realistic "* ]] && start_pg pg-realistic realistic $PG_REAL_PORT $PG_REAL_ADMIN
if [[ -n ${PG_BASELINE_DLL:-} ]]; then
  [[ -f $PG_BASELINE_DLL ]] || { echo "run.sh: PG_BASELINE_DLL $PG_BASELINE_DLL not found" >&2; exit 2; }
  [[ " $TARGETS " == *" pg-baseline "* ]] || TARGETS+=" pg-baseline"
  start_pg pg-baseline realistic $PG_BASE_PORT $PG_BASE_ADMIN "$PG_BASELINE_DLL"
fi

# Readiness: one request through each target (60 s at most).
AUTH="Authorization: Bearer $PLACEHOLDER"
for t in $TARGETS; do
  ok=
  for _ in $(seq 1 120); do
    args=(); [[ -n ${PROXY[$t]} ]] && args=(-x "${PROXY[$t]}")
    [[ -f ${CA[$t]} ]] && code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${args[@]}" --cacert "${CA[$t]}" -H "$AUTH" https://origin.test:$ORIGIN_TLS/small) && [[ $code == 200 ]] && { ok=1; break; }
    sleep 0.5
  done
  [[ -n $ok ]] || { echo "run.sh: $t is not answering (last status ${code:-none}); see $D/$t.out" >&2; tail -5 "$D/$t.out" >&2; exit 2; }
done
log "ready: $TARGETS"

{
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ), commit $(cd "$root" && git rev-parse --short HEAD), $(nproc) CPUs ($(lscpu | sed -n 's/^Model name:[[:space:]]*//p')), load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Scenario seconds: $DUR; handshake-heavy host names: $HOSTS; every process (load generator, origin, proxies) shares the machine."
} > "$OUT/meta.txt"

# CPU seconds (user + system) used so far by a target's process: the proxy's own PID, the origin for "direct".
cpu_of() { # target
  local pid=${PID[$1]:-}; [[ $1 == direct ]] && pid=${PID[origin]:-}
  [[ -n $pid && -r /proc/$pid/stat ]] || { echo 0; return; }
  local total=0
  # nginx's work is done by its worker processes (children of the master): add them.
  for p in $pid $(pgrep -P "$pid" 2>/dev/null); do
    [[ -r /proc/$p/stat ]] && total=$(( total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
  done
  echo "scale=3; $total / $(getconf CLK_TCK)" | bc
}
# Managed bytes a ProxyGuard target allocated so far (its own metric; empty for other targets and older builds).
alloc_of() { # target
  local a=${ADMIN[$1]:-}; [[ -n $a ]] || return 0
  curl -s --max-time 5 "http://127.0.0.1:$a/metrics" | awk '/^proxyguard_process_allocated_bytes_total /{printf "%.0f\n", $2}'
}
hey_run() { # scenario target extra-args... (URL last)
  local scen=$1 t=$2; shift 2
  local args=(); [[ -n ${PROXY[$t]} ]] && args=(-x "${PROXY[$t]}")
  local before abefore; before=$(cpu_of "$t"); abefore=$(alloc_of "$t")
  SSL_CERT_FILE=${CA[$t]} timeout $((DUR + 60)) hey -z ${DUR}s "${args[@]}" -H "${HDR:-$AUTH}" "$@" > "$OUT/$scen-$t.txt" 2>&1
  echo "$(cpu_of "$t") - $before" | bc > "$OUT/$scen-$t.cpu"
  local aafter; aafter=$(alloc_of "$t")
  [[ -n $abefore && -n $aafter ]] && echo $(( aafter - abefore )) > "$OUT/$scen-$t.alloc"
  return 0
}
handshake_run() { # target: HOSTS names, 8 at a time, new connection per request, 2 workers each
  local t=$1 par=8 batch=$(( (DUR + 3) / 4 )); (( batch < 1 )) && batch=1
  local args=(); [[ -n ${PROXY[$t]} ]] && args=(-x "${PROXY[$t]}")
  local start=$(date +%s.%N) i=1 before; before=$(cpu_of "$t")
  while (( i <= HOSTS )); do
    local pids=()
    for j in $(seq $i $(( i + par - 1 < HOSTS ? i + par - 1 : HOSTS ))); do
      SSL_CERT_FILE=${CA[$t]} timeout $((batch + 60)) hey -z ${batch}s -c 2 -disable-keepalive -o csv "${args[@]}" -H "$AUTH" \
        https://h$j.origin.test:$ORIGIN_TLS/small > "$OUT/handshake-$t-$j.csv" 2>&1 & pids+=($!)
    done
    wait "${pids[@]}"
    i=$(( i + par ))
  done
  echo "$(date +%s.%N) - $start" | bc > "$OUT/handshake-$t.wall"
  echo "$(cpu_of "$t") - $before" | bc > "$OUT/handshake-$t.cpu"
}

# Cold start: stop a proxy (only the PID this script started), start it again with its CA kept, poll for the first
# served request every 10 ms, then measure the first BENCH_COLD_SECONDS of load with no warm-up. "direct" gets the
# same load as a reference (nginx has nothing to warm).
stop_target() { # target
  local pid=${PID[$1]}
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null; sleep 0.2
}
cold_run() { # target
  local t=$1 t0 code=000
  if [[ $t != direct ]]; then
    stop_target "$t"
    t0=$(date +%s%N)
    case $t in
      pg-*) KEEP_CA=1 start_pg ${START[$t]} ;;
      squid) rm -f "$D/squid.pid"; start_squid ;;
    esac
    local args=(-x "${PROXY[$t]}")
    for _ in $(seq 1 3000); do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${args[@]}" --cacert "${CA[$t]}" -H "$AUTH" https://origin.test:$ORIGIN_TLS/small) && [[ $code == 200 ]] && break
      sleep 0.01
    done
    [[ $code == 200 ]] || { log "cold: $t did not answer after restart"; return 0; }
    echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$OUT/cold-$t.start"
    sed 's/^.*) //' "/proc/${PID[$t]}/stat" | awk -v hz="$(getconf CLK_TCK)" '{printf "%d\n", ($12 + $13) * 1000 / hz}' > "$OUT/cold-$t.startcpu"
  fi
  DUR=${BENCH_COLD_SECONDS:-10} hey_run cold "$t" -c 16 https://origin.test:$ORIGIN_TLS/small
}
if [[ " $SCENARIOS " == *" cold "* ]]; then
  for t in $TARGETS; do log "cold / $t"; cold_run "$t"; done
fi

# Warm-up (JIT, pools, certificate caches for origin.test): keep-alive load per proxy. ProxyGuard's
# tiered JIT needs it: a perf profile of the first seconds under load shows ~40% of the CPU in the
# JIT (tier-1/PGO recompilation), under 2% once warm.
for t in $TARGETS; do [[ $t != direct ]] && DUR=${BENCH_WARMUP:-30} hey_run warmup "$t" -c 16 https://origin.test:$ORIGIN_TLS/small; done
for t in $TARGETS; do [[ $t == pg-* ]] && DUR=3 hey_run warmup2 "$t" -c 4 -m POST -T application/octet-stream -D "$D/big.bin" https://origin.test:$ORIGIN_TLS/upload; done

# Idle tunnels first, while the heaps are small (the delta is cleaner than after heavy load).
if (( TUNNELS > 0 )); then
  for t in pg-realistic squid; do
    [[ " $TARGETS " == *" $t "* ]] || continue
    log "holding $TUNNELS idle tunnels through $t"
    timeout 600 python3 "$here/idle_tunnels.py" --proxy "${PROXY[$t]#http://}" --pid "${PID[$t]}" --ca "${CA[$t]}" \
      --target origin.test:$ORIGIN_TLS --count "$TUNNELS" --hold 10 --json > "$OUT/tunnels-$t.json" 2>"$OUT/tunnels-$t.err" \
      || log "tunnels through $t: $(cat "$OUT/tunnels-$t.json" "$OUT/tunnels-$t.err" | tail -2)"
    sleep 3
  done
fi

# With BENCH_ROUNDS=N (N > 1) each time-bound scenario runs N rounds, the targets alternating in order from round to
# round, and the report shows the median round of each target: on a shared, noisy machine one slow moment then
# cannot decide a comparison. The handshake scenario runs once.
ROUNDS=${BENCH_ROUNDS:-1}
for scen in $SCENARIOS; do
  for round in $(seq 1 "$ROUNDS"); do
    order=$TARGETS; (( round % 2 == 0 )) && order=$(echo $TARGETS | tr ' ' '\n' | tac | tr '\n' ' ')
    name=$scen; (( ROUNDS > 1 )) && name="$scen@r$round"
    [[ $scen == cold ]] && continue
    for t in $order; do
      log "$scen / $t$( (( ROUNDS > 1 )) && echo " (round $round of $ROUNDS)")"
      case $scen in
        ka16) hey_run $name $t -c 16 https://origin.test:$ORIGIN_TLS/small ;;
        ka64) hey_run $name $t -c 64 https://origin.test:$ORIGIN_TLS/small ;;
        handshake) (( round == 1 )) && handshake_run $t ;;
        h2) hey_run $name $t -h2 -c 16 https://origin.test:$ORIGIN_TLS/small ;;
        download) hey_run $name $t -c 4 https://origin.test:$ORIGIN_TLS/big.bin ;;
        upload) hey_run $name $t -c 4 -m POST -T application/octet-stream -D "$D/big.bin" https://origin.test:$ORIGIN_TLS/upload ;;
        # No placeholder over plain HTTP: it is refused there (secret-plain-http) unless a secret opts in.
        plain) HDR="X-Bench: plain" hey_run $name $t -c 16 http://origin.test:$ORIGIN_PLAIN/small ;;
      esac
    done
  done
done

rss=""
for t in pg-minimal pg-realistic pg-baseline squid mitmproxy; do
  [[ -n ${PID[$t]:-} && -r /proc/${PID[$t]}/status ]] && rss+="$t $(awk '/VmHWM/{print $2" "$3}' /proc/${PID[$t]}/status); "
done
echo "$rss" > "$OUT/rss.txt"
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)." >> "$OUT/meta.txt"
mkdir -p "$root/bench/results"
report=$root/bench/results/e2e-$(date +%Y%m%d-%H%M%S).md
python3 "$here/report.py" "$OUT" | tee "$report"
log "report: $report (raw outputs in $OUT)"
