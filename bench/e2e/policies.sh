#!/bin/bash
# Writes the two ProxyGuard benchmark policies into DIR:
#   minimal.yaml   one allow rule, no content scanning, no secrets;
#   realistic.yaml 60 rules (the benchmark's allow rule last, so every request walks the list),
#                  every built-in detector on headers/query/body, one custom content rule, and one
#                  secret substituted for the placeholder the benchmark requests carry.
# Usage: policies.sh DIR TLS_PORT PLAIN_PORT
set -euo pipefail
d=${1:?dir}; tls=${2:?tls port}; plain=${3:?plain port}
common() {
  cat <<YAML
version: 1
mode: enforce
default: deny
network:
  allow_destinations: [127.0.0.0/8]
tls:
  upstream_ca_files: [$d/origin-ca.pem]
YAML
}
bench_rule() {
  cat <<YAML
  - name: bench-origin
    hosts: [origin.test, "*.origin.test"]
    ports: [$tls, $plain]
    action: allow
YAML
}
{
  common
  echo "rules:"
  bench_rule
  cat <<YAML
content:
  builtin: none
  scan: []
YAML
} > "$d/minimal.yaml"
{
  common
  echo "rules:"
  for i in $(seq 1 20); do
    cat <<YAML
  - name: svc-$i-read
    hosts: [api$i.example.com, "*.svc$i.example.net"]
    methods: [GET, HEAD]
    action: allow
  - name: svc-$i-admin-deny
    hosts: [api$i.example.com]
    paths: ["/admin/**", "/v1/keys/*"]
    action: deny
YAML
  done
  for i in $(seq 1 19); do
    cat <<YAML
  - name: registry-$i
    hosts: [registry$i.example.org, "*.cdn$i.example.org"]
    ports: [443, 8443]
    methods: [GET, HEAD, POST]
    paths: ["/packages/**", "/v2/**", "/simple/*/"]
    action: allow
YAML
  done
  bench_rule
  cat <<YAML
content:
  builtin: all
  scan: [headers, query, body]
  max_body: 8MiB
  over_limit: deny
  rules:
    - name: internal-hostname
      pattern: 'corp\.internal\.example\.com'
      action: deny
secrets:
  - name: bench-token
    value: env:PG_BENCH_TOKEN
    placeholder: PGBENCH_PLACEHOLDER_TOKEN_0001
    hosts: [origin.test, "*.origin.test"]
    in: [headers]
YAML
} > "$d/realistic.yaml"
chmod 600 "$d/minimal.yaml" "$d/realistic.yaml"
