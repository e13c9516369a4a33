"""The benchmark's "keys and limits in Redis" gateway: the "keys and limits on" gateway
(bench/gateway-keys.yaml, bench/keys.py) with its limits, reservations and budget kept in a
redis-server the benchmark starts, and what the gateway's /metrics and Redis's own counters say
about the runs: that every decision was Redis's (no error, so nothing was decided in the process
by `fail_open`), that Redis was up, and how long its round trips took.

The gateway reads the backend from the environment (`MCP__STATE__BACKEND=redis`) and the URL from
`REDIS_URL` (the default `state.redis.url_env`); every other setting is the keyed gateway's.

Pure functions of text and dicts, plus a minimal RESP client (PING, INFO) for the redis-server on
127.0.0.1, so that the checks can be exercised without a running gateway.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

from routing import _by  # the same Prometheus text helpers as the other gateways'

URL_ENV = "REDIS_URL"  # state.redis.url_env's default
OPS = ("admit", "settle", "budget")  # the `op` label of the state backend's metrics
ERRORS = "mcp_server_state_backend_errors_total"
UP = "mcp_server_state_backend_up"
DURATION = "mcp_server_state_backend_duration_seconds"
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro")  # how a script reaches Redis


def gateway_env(redis_port: int) -> dict[str, str]:
    """What the keyed gateway gets on top of its usual environment to keep its state in Redis."""
    return {"MCP__STATE__BACKEND": "redis", URL_ENV: f"redis://127.0.0.1:{redis_port}"}


def server_argv(binary: str, port: int, workdir: Path) -> list[str]:
    """redis-server on 127.0.0.1:`port`, nothing written to disk (no snapshots, no append-only
    file; `workdir` is the benchmark's temporary directory in any case)."""
    return [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--daemonize", "no",
    ]


# --------------------------------------------------------------------------------------------
# RESP


def _encode(args: tuple[str, ...]) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return b"".join(out)


def _reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(f"Redis answered an error: {rest.decode(errors='replace')}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise RuntimeError(f"not a RESP reply: {line[:80]!r}")


def command(port: int, *args: str, timeout: float = 2.0):
    """One command on a fresh connection to 127.0.0.1:`port`, and its reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_encode(args))
        with s.makefile("rb") as f:
            return _reply(f)


def parse_info(text: str) -> dict[str, str]:
    """`INFO`'s `name:value` lines (section headers and blank lines skipped)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, _, value = line.partition(":")
            out[name] = value
    return out


def script_calls(info: dict[str, str]) -> dict[str, int]:
    """From `INFO commandstats`: calls of the script commands, and how many of them failed or were
    rejected (the first EVALSHA of a script Redis does not know yet fails with NOSCRIPT; the
    client then loads it and calls again), and the time Redis spent running them (µs)."""
    out = {"calls": 0, "failed": 0, "rejected": 0, "usec": 0, "script_load": 0}
    for name, value in info.items():
        if not name.startswith("cmdstat_"):
            continue
        fields = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
        cmd = name[len("cmdstat_"):]
        if cmd in SCRIPT_COMMANDS:
            out["calls"] += int(fields.get("calls", 0))
            out["failed"] += int(fields.get("failed_calls", 0))
            out["rejected"] += int(fields.get("rejected_calls", 0))
            out["usec"] += int(fields.get("usec", 0))
        elif cmd == "script|load":
            out["script_load"] += int(fields.get("calls", 0))
    out["succeeded"] = out["calls"] - out["failed"] - out["rejected"]
    return out


# --------------------------------------------------------------------------------------------
# the gateway's state backend metrics


def family_present(samples: dict, name: str) -> bool:
    return any(n == name for n, _ in samples)


def histograms(samples: dict) -> dict[str, dict]:
    """mcp_server_state_backend_duration_seconds per op: cumulative buckets [(le, count)]
    ascending, sum (s) and count. Works on a scrape or on a delta of two."""
    out: dict[str, dict] = {}
    buckets = _by(samples, f"{DURATION}_bucket", "op", "le")
    sums = _by(samples, f"{DURATION}_sum", "op")
    counts = _by(samples, f"{DURATION}_count", "op")
    for op in OPS:
        b = sorted(((float(le), v) for (o, le), v in buckets.items() if o == op), key=lambda x: x[0])
        out[op] = {"buckets": b, "sum_s": sums.get(op, 0.0), "count": counts.get(op, 0.0)}
    return out


def add_histograms(a: dict, b: dict) -> dict:
    """The sum of two `histograms()` results (e.g. of several runs)."""
    out = {}
    for op in OPS:
        ha, hb = a.get(op), b.get(op)
        if not ha or not hb:
            out[op] = ha or hb
            continue
        les = sorted({le for le, _ in ha["buckets"]} | {le for le, _ in hb["buckets"]})
        da, db = dict(ha["buckets"]), dict(hb["buckets"])
        out[op] = {
            "buckets": [(le, da.get(le, 0.0) + db.get(le, 0.0)) for le in les],
            "sum_s": ha["sum_s"] + hb["sum_s"],
            "count": ha["count"] + hb["count"],
        }
    return out


def quantile_bucket(h: dict, q: float) -> tuple[float, float] | None:
    """The bucket (lower, upper bound, seconds) holding quantile q: the histogram cannot say more.
    None without observations; upper = inf beyond the last finite bound."""
    count = h["count"]
    if not count:
        return None
    rank = q * count
    lower = 0.0
    for le, cumulative in h["buckets"]:
        if cumulative >= rank:
            return (lower, le)
        lower = le
    return (lower, math.inf)


def describe(h: dict) -> dict:
    """Mean (exact, from sum and count) and the buckets of p50 and p99, in µs."""
    def us(b):
        return None if b is None else [1e6 * b[0], (1e6 * b[1]) if math.isfinite(b[1]) else math.inf]

    return {
        "count": h["count"],
        "mean_us": 1e6 * h["sum_s"] / h["count"] if h["count"] else math.nan,
        "p50_bucket_us": us(quantile_bucket(h, 0.50)),
        "p99_bucket_us": us(quantile_bucket(h, 0.99)),
    }


def summarize(start: dict, before: dict, after: dict, redis_before: dict, redis_after: dict, key_2xx: float) -> dict:
    """Whether the runs' limits really were Redis's, from three scrapes of the gateway's /metrics
    (`start`: after it connected to Redis, before any request; `before` and `after`: around all
    its wrk runs) and Redis's `INFO commandstats` around the same runs. `key_2xx`: the requests
    answered 2xx under the key over those runs.

    Expected: mcp_server_state_backend_errors_total present, no admit or settle error before any
    request, and not one more error of any op during the checks and runs (an error means that
    operation was decided or dropped in the process: `fail_open`); mcp_server_state_backend_up
    present and 1; at least one admit (one decision in Redis) per request answered 2xx; Redis
    running at least as many scripts as the gateway timed."""
    errors_start = {op: v for op, v in _by(start, ERRORS, "op").items()}
    errors_after = {op: v for op, v in _by(after, ERRORS, "op").items()}
    errors_runs = {op: errors_after.get(op, 0.0) - errors_start.get(op, 0.0) for op in OPS}
    up = _by(after, UP)
    up_value = sum(up.values()) if up else None
    hist = histograms({k: v - before.get(k, 0.0) for k, v in after.items()})
    ops = {op: hist[op]["count"] for op in OPS}
    calls = {k: redis_after[k] - redis_before.get(k, 0) for k in redis_after}
    out = {
        "errors_family_present": family_present(after, ERRORS),
        "errors_at_start": {op: errors_start.get(op, 0.0) for op in OPS},
        "errors_during_runs": errors_runs,
        "up": up_value,
        "ops_during_runs": ops,
        "round_trip_all_runs": {op: describe(hist[op]) for op in OPS},
        "redis_script_calls": calls,
        "key_2xx": key_2xx,
    }
    problems = []
    if not out["errors_family_present"]:
        problems.append(f"the gateway exports no {ERRORS}: it did not run the Redis backend")
    if up_value is None:
        problems.append(f"the gateway exports no {UP}: it did not run the Redis backend")
    elif up_value != 1:
        problems.append(f"{UP} is {up_value:.0f}, not 1")
    for op in ("admit", "settle"):
        if errors_start.get(op, 0.0):
            problems.append(f"{errors_start[op]:.0f} {op} errors before any request")
    bad = {op: v for op, v in errors_runs.items() if v}
    if bad:
        problems.append("state backend errors during the runs " + ", ".join(f"{op} {v:.0f}" for op, v in bad.items())
                        + " (those operations were decided or dropped in the process, fail_open)")
    if ops["admit"] < key_2xx:
        problems.append(f"{ops['admit']:.0f} decisions timed in Redis for {key_2xx:.0f} requests answered 2xx under the key")
    if not ops["settle"]:
        problems.append("no settlement timed in Redis")
    if calls.get("succeeded", 0) < ops["admit"] + ops["settle"]:
        problems.append(f"Redis ran {calls.get('succeeded', 0)} scripts, fewer than the gateway's "
                        f"{ops['admit'] + ops['settle']:.0f} decisions and settlements")
    out["problems"] = problems
    out["ok"] = not problems
    return out
