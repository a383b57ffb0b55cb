#!/usr/bin/env python3
"""Turns the raw outputs of run.sh (hey summaries, hey CSVs, idle-tunnel JSON) into one markdown report.

  report.py OUT_DIR   (reads OUT_DIR/*.txt, *.csv, *.wall, tunnels-*.json, meta.txt; prints markdown)"""
import glob
import json
import os
import re
import sys

MIB = 1024 * 1024
TARGET_ORDER = ["direct", "pg-minimal", "pg-realistic", "pg-baseline", "squid", "mitmproxy"]
SCENARIOS = [
    ("cold", "cold: first seconds after a restart, no warm-up, /small, 16 conns", None),
    ("ka16", "keep-alive HTTPS /small, 16 conns", None),
    ("ka64", "keep-alive HTTPS /small, 64 conns", None),
    ("handshake", "new connection per request, distinct host names", None),
    ("h2", "HTTP/2 from the client, /small, 16 workers", None),
    ("download", "1 MiB download, 4 conns", 1),
    ("upload", "1 MiB upload, 4 conns", 1),
    ("plain", "plain HTTP /small, 16 conns", None),
]


def parse_summary(path):
    text = open(path, errors="replace").read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"50%+ in ([\d.]+) secs", text)
    p99 = re.search(r"99%+ in ([\d.]+) secs", text)
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)}
    errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+(?!\d+ responses)", text, re.M))
    ok = codes.get(200, 0)
    total = sum(codes.values())
    r = float(rps.group(1)) if rps else 0.0
    # hey's Requests/sec counts every request that finished (errors included); keep successful ones.
    good_rps = r * ok / (total + errors) if total + errors else 0.0
    return {"rps": good_rps, "p50": float(p50.group(1)) * 1000 if p50 else None,
            "p99": float(p99.group(1)) * 1000 if p99 else None, "ok": ok, "bad": (total - ok) + errors}


def parse_csvs(paths, wall):
    lat = []
    ok = bad = 0
    for path in paths:
        for line in open(path, errors="replace"):
            parts = line.strip().split(",")
            if len(parts) < 8 or not parts[0][0].isdigit():
                continue
            if parts[6] == "200":
                ok += 1
                lat.append(float(parts[0]) * 1000)
            else:
                bad += 1
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    return {"rps": ok / wall if wall else 0.0, "p50": pick(0.50), "p99": pick(0.99), "ok": ok, "bad": bad}


def with_cpu(result, path):
    """Adds the CPU seconds (NAME.cpu) and, for ProxyGuard targets, the managed bytes allocated (NAME.alloc)."""
    for key, file in (("cpu", path), ("alloc", path[:-4] + ".alloc")):
        if os.path.exists(file):
            try:
                result[key] = float(open(file).read().strip())
            except ValueError:
                pass
    return result


def median_round(rounds):
    """The round with the median req/s, with the median CPU per request over all rounds and the round count."""
    if len(rounds) == 1:
        return rounds[0]
    by_rps = sorted(rounds, key=lambda r: r["rps"])
    chosen = dict(by_rps[len(by_rps) // 2])
    per_req = sorted(r["cpu"] / r["ok"] for r in rounds if r.get("cpu") and r["ok"])
    if per_req:
        chosen["cpu"] = per_req[len(per_req) // 2] * chosen["ok"]
    alloc_per_req = sorted(r["alloc"] / r["ok"] for r in rounds if r.get("alloc") and r["ok"])
    if alloc_per_req:
        chosen["alloc"] = alloc_per_req[len(alloc_per_req) // 2] * chosen["ok"]
    chosen["rounds"] = len(rounds)
    return chosen


def fmt(v, digits=1):
    return "—" if v is None else f"{v:,.{digits}f}"


def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}x"


def main():
    out = sys.argv[1]
    results = {}
    for scen, _, _ in SCENARIOS:
        for target in TARGET_ORDER:
            csvs = sorted(glob.glob(os.path.join(out, f"{scen}-{target}-*.csv")))
            wall = os.path.join(out, f"{scen}-{target}.wall")
            if csvs and os.path.exists(wall):
                results[(scen, target)] = with_cpu(parse_csvs(csvs, float(open(wall).read().strip())), os.path.join(out, f"{scen}-{target}.cpu"))
                continue
            # One run ("ka16-pg-realistic.txt") or several rounds ("ka16@r2-pg-realistic.txt"): the median round.
            names = [f"{scen}-{target}"] + sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(out, f"{scen}@r*-{target}.txt")))
            rounds = [with_cpu(parse_summary(os.path.join(out, n + ".txt")), os.path.join(out, n + ".cpu"))
                      for n in names if os.path.exists(os.path.join(out, n + ".txt"))]
            if rounds:
                results[(scen, target)] = median_round(rounds)
    lines = []
    meta = os.path.join(out, "meta.txt")
    if os.path.exists(meta):
        lines += [open(meta).read().rstrip(), ""]
    # CPU ms/req: CPU time of the target's own process (the origin's for "direct") over the scenario, per
    # successful request; it does not depend on how busy the rest of the machine was.
    # KiB/req: managed bytes the proxy allocated per request (its own metric): repeatable whatever else runs.
    lines += ["| scenario | target | req/s | MiB/s | p50 ms | p99 ms | ok | errors | vs direct | vs squid | CPU ms/req | alloc KiB/req |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for scen, title, mib in SCENARIOS:
        direct = results.get((scen, "direct"), {}).get("rps")
        squid = results.get((scen, "squid"), {}).get("rps")
        for target in TARGET_ORDER:
            r = results.get((scen, target))
            if r is None:
                continue
            label = f"{title} (median of {r['rounds']} rounds)" if r.get("rounds") else title
            lines.append(f"| {label} | {target} | {fmt(r['rps'])} | {fmt(r['rps'] * mib) if mib else ''} | "
                         f"{fmt(r['p50'], 2)} | {fmt(r['p99'], 2)} | {r['ok']} | {r['bad']} | "
                         f"{'' if target == 'direct' else ratio(r['rps'], direct)} | "
                         f"{'' if target in ('squid', 'direct') else ratio(r['rps'], squid)} | "
                         f"{fmt(r['cpu'] * 1000 / r['ok'], 3) if r.get('cpu') and r['ok'] else '—'} | "
                         f"{fmt(r['alloc'] / 1024 / r['ok'], 2) if r.get('alloc') and r['ok'] else '—'} |")
    tunnels = sorted(glob.glob(os.path.join(out, "tunnels-*.json")))
    if tunnels:
        lines += ["", "| idle intercepted tunnels | held | alive | failures | RSS before KiB | RSS held KiB | KiB per tunnel |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for path in tunnels:
            name = os.path.basename(path)[len("tunnels-"):-len(".json")]
            try:
                t = json.load(open(path))
            except ValueError:
                lines.append(f"| {name} | failed: {open(path).read().strip()[:120]} ||||||")
                continue
            lines.append(f"| {name} | {t['requested']} | {t['alive_after_hold']} | {t['failures']} | "
                         f"{t['rss_base_kib']} | {t['rss_held_kib']} | **{t['kib_per_tunnel']}** |")
    starts = sorted(glob.glob(os.path.join(out, "cold-*.start")))
    if starts:
        lines += ["", "| cold start | process start to first served HTTPS request, ms | CPU used by then, ms |", "|---|---:|---:|"]
        for path in starts:
            name = os.path.basename(path)[len("cold-"):-len(".start")]
            cpu = path[:-len(".start")] + ".startcpu"
            lines.append(f"| {name} | {open(path).read().strip()} | {open(cpu).read().strip() if os.path.exists(cpu) else '—'} |")
    rss = os.path.join(out, "rss.txt")
    if os.path.exists(rss):
        lines += ["", "Peak RSS (VmHWM) after the run: " + open(rss).read().strip()]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
