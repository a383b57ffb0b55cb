#!/usr/bin/env python3
"""Opens N intercepted tunnels through an HTTP proxy (CONNECT + TLS inside, optionally one request
each), holds them all open at once, and reports the proxy's resident memory per tunnel.

  idle_tunnels.py --proxy 127.0.0.1:18080 --pid PROXY_PID --ca PROXY_CA.pem \
      --target origin.test:19443 --count 5000 [--request] [--hold 10]

Memory per tunnel = (proxy VmRSS with N tunnels held - VmRSS after a warm-up round) / N.
Every step is bounded (timeouts, --count, --hold). Exit code 0 when all N tunnels were open at once."""
import argparse
import asyncio
import json
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_tunnel(args, ctx, host, port, do_request):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(args.proxy_host, args.proxy_port), 30)
    writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        writer.close()
        raise RuntimeError("CONNECT refused: " + head.split(b"\r\n")[0].decode(errors="replace"))
    await asyncio.wait_for(writer.start_tls(ctx, server_hostname=host), 30)
    if do_request:
        writer.write(f"GET /small HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        resp = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if not resp.startswith(b"HTTP/1.1 200"):
            raise RuntimeError("request failed: " + resp.split(b"\r\n")[0].decode(errors="replace"))
        length = 0
        for line in resp.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await asyncio.wait_for(reader.readexactly(length), 30)
    return reader, writer


async def open_many(args, ctx, n, do_request):
    host, port = args.target.rsplit(":", 1)
    sem = asyncio.Semaphore(args.parallel)
    failures = []

    async def one(i):
        async with sem:
            try:
                return await open_tunnel(args, ctx, host, int(port), do_request)
            except Exception as e:  # noqa: BLE001 - counted and reported
                failures.append(repr(e))
                return None

    tunnels = await asyncio.gather(*(one(i) for i in range(n)))
    return [t for t in tunnels if t is not None], failures


def close_all(tunnels):
    for _, w in tunnels:
        w.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--proxy", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--target", default="origin.test:19443")
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--parallel", type=int, default=64)
    p.add_argument("--request", action="store_true", help="send one GET on each tunnel before holding it")
    p.add_argument("--hold", type=float, default=10)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.proxy_host, args.proxy_port = args.proxy.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.set_alpn_protocols(["http/1.1"])

    # Warm-up: JIT, pools, the leaf certificate; then the baseline.
    warm, wf = await open_many(args, ctx, min(200, args.count), args.request)
    close_all(warm)
    await asyncio.sleep(3)
    base = rss_kib(args.pid)

    t0 = time.monotonic()
    tunnels, failures = await open_many(args, ctx, args.count, args.request)
    opened = time.monotonic() - t0
    await asyncio.sleep(args.hold)
    alive = sum(1 for r, w in tunnels if not w.is_closing() and not r.at_eof())
    held = rss_kib(args.pid)
    close_all(tunnels)
    per = (held - base) / max(alive, 1)
    result = {
        "requested": args.count, "opened": len(tunnels), "alive_after_hold": alive,
        "failures": len(failures), "first_failure": failures[0] if failures else None,
        "open_seconds": round(opened, 1), "rss_base_kib": base, "rss_held_kib": held,
        "kib_per_tunnel": round(per, 1), "with_request": args.request,
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0 if alive == args.count else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
