#!/usr/bin/env python3
"""Instructions per request: the gateway's own work, counted by callgrind instead of timed.

`make bench` times CPU on a 2-core machine where other jobs, frequency changes and the kernel
move every figure by several per cent between runs. Counting the instructions the gateway
executes per request is slower (valgrind runs it ~50x slower) but repeats to within a fraction
of a per cent, so that a change to the request path can be compared with the build before it
to the per cent, and the difference located by function:

    python3 bench/instructions.py                        # open gateway and keyed gateway
    python3 bench/instructions.py --baseline-rev 509b506 # and mcp-proxy as built at 509b506
    python3 bench/instructions.py --keep DIR             # keep the callgrind files, for
                                                         # callgrind_annotate DIR/<side>.out

Each side is the release `mcp-proxy` with one worker, started under
`valgrind --tool=callgrind --instr-atstart=no`, in front of the benchmark's nginx upstream
(bench/nginx.conf). After a warm-up, counting is switched on (`callgrind_control -i on`), one
keep-alive connection sends `--requests` chat completions (the body of `make bench`), and
counting is switched off again: start-up, the warm-up and shutdown are not counted.

What it does not show: time in the kernel (about half of the gateway's CPU per request, see
the README's Performance section), waits, and the effect of several connections. valgrind
emulates no SHA extensions, so the keyed side's SHA-256 of the presented key runs in
software here and costs several times what it costs on a CPU with them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import baseline
import keys as bench_keys
import run

def wrk_body() -> bytes:
    """The request body wrk sends in `make bench` (bench/post.lua, without `stream`)."""
    text = (run.BENCH / "post.lua").read_text()
    pieces = text[text.index("local body ="):text.index("(stream and")]
    return ("".join(re.findall(r"'([^']*)'", pieces)) + "}").encode()


BODY = wrk_body()


def drive(port: int, n: int, auth: str | None) -> None:
    """`n` chat completions on one keep-alive connection, each answered 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    for _ in range(n):
        conn.request("POST", run.CHAT_PATH, body=BODY, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"answered {response.status}")
    conn.close()


def count(procs: run.Processes, tmp: Path, name: str, binary: Path, upstream: str,
          config: Path | None, auth: str | None, requests: int, warmup: int) -> tuple[int, Path]:
    """Instructions executed while `requests` requests were served, and the callgrind file."""
    port = run.free_port()
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("MCP_") or k in ("RUST_LOG", "OPENAI_API_KEY"))}
    env.update(MCP__SERVER__WORKERS="1", MCP__LOG__LEVEL="warn")
    out = tmp / f"{name}.out"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            str(binary), "--listen", f"127.0.0.1:{port}", "--upstream", upstream]
    if config:
        argv += ["--config", str(config)]
    log_path = tmp / f"{name}.log"
    proc = procs.start(name, argv, env=env, log_path=log_path)
    run.wait_healthy(name, proc, port, "/health", log_path, timeout=180)
    drive(port, warmup, auth)
    subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
    drive(port, requests, auth)
    subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
    proc.terminate()
    proc.wait(timeout=120)
    total = 0
    for path in tmp.glob(f"{name}.out*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    if total == 0:
        raise RuntimeError(f"{name}: callgrind counted nothing (see {log_path})")
    return total, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000, help="requests counted per side (default 3000)")
    ap.add_argument("--warmup", type=int, default=300, help="requests before counting starts (default 300)")
    ap.add_argument("--baseline-rev", help="also count mcp-proxy as built at this git revision")
    ap.add_argument("--no-build", action="store_true", help="use target/release/mcp-proxy as it is")
    ap.add_argument("--keep", type=Path, help="copy the callgrind files here")
    args = ap.parse_args()

    if not shutil.which("valgrind"):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run.log("installing valgrind with apt-get")
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "valgrind"], check=True, env=env)
    run.ensure_tools(install=True)
    if not args.no_build:
        run.log("cargo build --release --bins -p mcp-proxy")
        subprocess.run(["cargo", "build", "--release", "--bins", "-p", "mcp-proxy"], cwd=run.ROOT, check=True)
    sides: list[tuple[str, Path, bool]] = [("open", run.PROXY_BIN, False), ("keys", run.PROXY_BIN, True)]
    if args.baseline_rev:
        info = baseline.ensure(run.ROOT, args.baseline_rev, run.log)
        sides.append((f"baseline {info['short']}", Path(info["binary"]), False))

    procs = run.Processes()
    tmp = Path(tempfile.mkdtemp(prefix="mcp-instructions-"))
    results: dict[str, float] = {}
    try:
        json_port, _, _ = run.start_nginx(procs, tmp)
        upstream = f"http://127.0.0.1:{json_port}/v1"
        settings = tmp / "keys.yaml"
        settings.write_text(bench_keys.render_settings())
        for name, binary, keyed in sides:
            run.log(f"{name}: {args.warmup} requests, then {args.requests} counted")
            file_name = name.replace(" ", "-")
            total, out = count(procs, tmp, file_name, binary, upstream,
                               settings if keyed else None, bench_keys.SECRET if keyed else None,
                               args.requests, args.warmup)
            results[name] = total / args.requests
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(out, args.keep / f"{file_name}.out")
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    open_side = results["open"]
    print(f"\n| gateway | instructions per request | vs open |\n|---|---:|---:|")
    for name, per_request in results.items():
        print(f"| {name} | {per_request:,.0f} | {per_request / open_side:.3f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
