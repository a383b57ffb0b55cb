#!/usr/bin/env bash
# Runs every command of the getting-started guides, against loopback only.
#
#   docs/check-commands.sh [docs/getting-started-*.md ...]
#
# Each guide's ```sh blocks are joined, in order, into one script that runs under
# `bash -euo pipefail` in a fresh directory (with `samples` and `policies` linked from the checkout),
# with HOME set to an empty directory. Ports 8080 and 9090 in the text are replaced by free ports.
# Info strings:
#   ```sh                          run
#   ```sh requires=TOOL            run when TOOL is on PATH (docker, kubectl, systemctl), else listed as skipped;
#                                  with PG_REQUIRE_TOOLS=1 (CI) only docker, kubectl and systemctl may be missing
#   ```sh checked-by=PackagingTests  not run here: must equal the Dockerfile's publish step, which
#                                  tests/ProxyGuard.FunctionalTests/Ecosystem/PackagingTests.cs runs
#   ```yaml / ```text / ```ini / ```json  not commands
# PG_DOCS_VERBOSE=1 prints each guide's full output.
# The other docs are checked by tests/ProxyGuard.FunctionalTests/Ecosystem/DocsSnippetsTests.cs: every policy
# snippet passes `policy check`, every `proxyguard ...` command line and synopsis parses, every `--flag` named in
# prose exists, every ```json event example has the fields and decision/reason words of a real event, every reason
# named is in the closed set, the user docs name no type of the code, and every relative link and #anchor resolves.
# CI (.ci/run) runs both through `dotnet test`; DocsCommandsTests fails when a getting-started guide is not run.
# `proxyguard` is $PROXYGUARD_DLL run with dotnet when set, else the proxyguard on PATH. `claude`
# is a stub that checks the variables it was given (Claude Code itself is not installed here).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
if (($# == 0)); then
  set -- "$repo"/docs/getting-started-*.md   # every guide; DocsCommandsTests runs each one in `dotnet test`
fi

# Not under /tmp, /var/tmp or /run: the bubblewrap sandbox mounts empty ones there, and the guides'
# files (and the claude stub) must stay visible inside it.
case "$repo/" in
  /tmp/*|/var/tmp/*|/run/*) base="${XDG_CACHE_HOME:-$HOME/.cache}/proxyguard-docs-check" ;;
  *) base="$repo/.artifacts" ;;
esac
mkdir -p "$base"
root="$(mktemp -d "$base/docs-check.XXXXXX")"
cleanup() { rm -rf "$root"; }
trap cleanup EXIT

bin="$root/.bin"
mkdir -p "$bin"
if [[ -n "${PROXYGUARD_DLL:-}" ]]; then
  printf '#!/bin/sh\nexec dotnet %q "$@"\n' "$PROXYGUARD_DLL" >"$bin/proxyguard"
  chmod +x "$bin/proxyguard"
elif ! command -v proxyguard >/dev/null 2>&1; then
  echo "check-commands: set PROXYGUARD_DLL or put proxyguard on PATH" >&2
  exit 2
fi
cat >"$bin/claude" <<'STUB'
#!/bin/sh
# Stand-in for Claude Code: it must get the proxy, Node's extra CA and a placeholder API key.
[ -n "${HTTPS_PROXY:-}" ] || { echo "claude stub: HTTPS_PROXY is not set" >&2; exit 1; }
[ -r "${NODE_EXTRA_CA_CERTS:-/nonexistent}" ] || { echo "claude stub: NODE_EXTRA_CA_CERTS unreadable" >&2; exit 1; }
case "${ANTHROPIC_API_KEY:-}" in PG_SECRET_*) ;; *) echo "claude stub: ANTHROPIC_API_KEY is not a placeholder" >&2; exit 1 ;; esac
echo "claude stub: proxy $HTTPS_PROXY, CA $NODE_EXTRA_CA_CERTS, key placeholder ok"
STUB
chmod +x "$bin/claude"

# A tool counts as available when it can do its job here (a docker CLI without a daemon cannot).
have() {
  case "$1" in
    docker) docker info >/dev/null 2>&1 ;;
    systemctl) [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1 ;;
    kubectl) kubectl version --request-timeout=5s >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

# Tools a CI host may lack (a Docker daemon, a systemd boot, a cluster); .ci/run installs the others.
may_be_missing() { case "$1" in docker|systemctl|kubectl) return 0 ;; *) return 1 ;; esac; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

publish_step="$(sed -n 's/^RUN \(dotnet publish .*\)$/\1/p' "$repo/Dockerfile")"
[[ -n "$publish_step" ]] || { echo "check-commands: no publish step in the Dockerfile" >&2; exit 1; }

status=0
for doc in "$@"; do
  name="$(basename "$doc" .md)"
  work="$root/$name"
  mkdir -p "$work" "$root/$name.home"
  ln -s "$repo/samples" "$work/samples"
  ln -s "$repo/policies" "$work/policies"
  script="$root/$name.sh"
  p1="$(free_port)"; p2="$(free_port)"; p3="$(free_port)"
  : >"$script"
  blocks=0
  skipped=()
  # Extract fenced blocks: "KIND<TAB>LINE" header lines, then the block's text.
  while IFS= read -r -d $'\x1e' block; do
    info="${block%%$'\n'*}"
    body="${block#*$'\n'}"
    line="${info##*@}"
    info="${info%@*}"
    case "$info" in
      sh)
        blocks=$((blocks + 1))
        printf '\necho "+ %s:%s" >&2\n%s\n' "$name" "$line" "$body" >>"$script" ;;
      "sh requires="*)
        tool="${info#sh requires=}"
        if have "$tool"; then
          blocks=$((blocks + 1))
          printf '\necho "+ %s:%s" >&2\n%s\n' "$name" "$line" "$body" >>"$script"
        elif [[ "${PG_REQUIRE_TOOLS:-}" == 1 ]] && ! may_be_missing "$tool"; then
          # CI installs every other tool (.ci/run): a guide step it cannot run is a failure, not a skip.
          echo "check-commands: $name.md:$line needs $tool, which is not installed (PG_REQUIRE_TOOLS=1)" >&2
          status=1
        else
          skipped+=("$name.md:$line (needs $tool)")
        fi ;;
      "sh checked-by=PackagingTests")
        expected="${publish_step/-o \/app/-o /opt/proxyguard}"
        if [[ "$(printf '%s' "$body" | sed '/^$/d')" != "$expected" ]]; then
          echo "check-commands: $name.md:$line: install block must be exactly: $expected" >&2
          status=1
        fi ;;
      yaml|text|ini|json) ;;
      *)
        echo "check-commands: $name.md:$line: unknown block kind '$info' (use sh, sh requires=TOOL, yaml, text, ini, json)" >&2
        status=1 ;;
    esac
  done < <(awk '
    /^```/ {
      if (inside) { printf "\x1e"; inside = 0; next }
      info = substr($0, 4); inside = 1; printf "%s@%d\n", info, NR; next
    }
    inside { print }
  ' "$doc")

  sed -i "s/127\.0\.0\.1:8080/127.0.0.1:$p1/g; s/127\.0\.0\.1:9090/127.0.0.1:$p2/g; s/127\.0\.0\.1:9091/127.0.0.1:$p3/g" "$script"
  echo "== $name: $blocks blocks (ports 8080->$p1, 9090->$p2)"
  log="$root/$name.log"
  set +e
  (
    cd "$work"
    export HOME="$root/$name.home" PATH="$bin:$PATH" ANTHROPIC_API_KEY="synthetic-not-a-real-key"
    unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy NO_PROXY no_proxy
    exec setsid bash -euo pipefail "$script"
  ) >"$log" 2>&1 </dev/null &
  pid=$!
  wait "$pid"
  rc=$?
  kill -TERM -- "-$pid" 2>/dev/null
  set -e
  if ((rc != 0)); then
    echo "FAILED ($rc): $name" >&2
    tail -n 60 "$log" >&2
    status=1
  else
    if [[ -n "${PG_DOCS_VERBOSE:-}" ]]; then
      cat "$log"
    fi
    grep '^+ ' "$log" | sed 's/^/   ran /' || true
    echo "   ok"
  fi
  for s in "${skipped[@]}"; do
    echo "   skipped $s"
  done
done
exit "$status"
