"""The benchmark's "keys and limits on" gateway: its settings file (one client key with generous
limits and a budget, generous gateway-wide limits, a price), the key wrk presents, and what its
/metrics scrape says about the runs (that no request was refused, and every one was counted
under the key).

Pure functions of text and dicts, so that they can be checked without a running gateway.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from routing import _by  # the same Prometheus text helpers as the two-deployment gateway's

TEMPLATE = Path(__file__).resolve().parent / "gateway-keys.yaml"
PLACEHOLDER = "KEY_SHA256"

# The key wrk sends (`Authorization: Bearer`, through post.lua's BENCH_AUTH). A benchmark secret,
# not a credential: the gateway it opens lives for one run on 127.0.0.1.
SECRET = "sk-mcp-bench-keys-and-limits"
KEY_NAME = "bench"


def digest(secret: str = SECRET) -> str:
    """What `printf %s "$KEY" | sha256sum` prints: the settings' `sha256`."""
    return hashlib.sha256(secret.encode()).hexdigest()


def render_settings(template: Path = TEMPLATE, secret: str = SECRET) -> str:
    """The template with the key's digest filled in."""
    text = template.read_text()
    if PLACEHOLDER not in text:
        raise RuntimeError(f"{template} has no {PLACEHOLDER} to replace")
    if not re.search(rf"^\s*-\s*name:\s*\"?{re.escape(KEY_NAME)}\"?\s*$", text, re.M):
        raise RuntimeError(f"{template} has no key named {KEY_NAME!r}")
    return text.replace(PLACEHOLDER, digest(secret))


def summarize(samples: dict, after: dict, wrk_requests: int, wrk_runs: int, in_flight_bound: int) -> dict:
    """What the limits did over a scrape delta (`samples`; `after` for the gauges) of all the wrk
    runs through the gateway: `wrk_runs` runs (warm-ups included) that completed `wrk_requests`
    requests and could leave at most `in_flight_bound` requests in flight when they ended (the
    sum of their connections).

    Expected: no refusal by any limit; no 5xx; the key's 2xx at least wrk's count (wrk fails a
    run on any status of 400 or more, so every answer it counted was a 2xx under the key); 4xx
    only the requests cancelled when wrk closed its connections at the end of a run (status 499,
    counted under the key and in mcp_server_client_disconnects_total, not in
    mcp_server_requests_total, which counts answers sent); and those, with the 2xx wrk did not
    read before closing (the excess over its count), at most one per connection per run."""
    refused = {f"{k}/{lim}": v for (lim, k), v in sorted(_by(samples, "mcp_server_rate_limited_total", "limit", "key").items()) if v}
    classes = {c: v for (k, c), v in _by(samples, "mcp_server_key_requests_total", "key", "class").items() if k == KEY_NAME}
    tokens = {t: v for (k, t), v in _by(samples, "mcp_server_key_tokens_total", "key", "type").items() if k == KEY_NAME}
    cost = _by(samples, "mcp_server_key_cost_usd_total", "key").get(KEY_NAME, 0.0)
    budget = _by(after, "mcp_server_key_budget_usd", "key").get(KEY_NAME, float("nan"))
    remaining = _by(after, "mcp_server_key_budget_remaining_usd", "key").get(KEY_NAME, float("nan"))
    statuses = {s: v for (e, s), v in _by(samples, "mcp_server_requests_total", "endpoint", "status").items()
                if e == "/v1/chat/completions" and v}
    errors = {k: v for k, v in _by(samples, "mcp_server_errors_total", "error_type").items() if v}
    disconnects = sum(_by(samples, "mcp_server_client_disconnects_total", "phase").values())
    ok2xx, c4xx, c5xx = classes.get("2xx", 0.0), classes.get("4xx", 0.0), classes.get("5xx", 0.0)
    out = {
        "key": KEY_NAME,
        "rate_limited": refused,
        "rate_limited_total": sum(refused.values()),
        "key_requests": {c: classes.get(c, 0.0) for c in ("2xx", "4xx", "5xx")},
        "wrk_requests": wrk_requests,
        "wrk_runs": wrk_runs,
        "excess_2xx": ok2xx - wrk_requests,
        "in_flight_bound": in_flight_bound,
        "statuses": statuses,
        "errors_answered": errors,
        "client_disconnects": disconnects,
        "key_tokens": tokens,
        "key_cost_usd": cost,
        "budget_usd": budget,
        "budget_remaining_usd": remaining,
    }
    problems = []
    if out["rate_limited_total"]:
        problems.append(f"requests refused by a limit {refused}")
    if c5xx:
        problems.append(f"{c5xx:.0f} answers 5xx under the key")
    if ok2xx < wrk_requests:
        problems.append(f"the key's 2xx ({ok2xx:.0f}) below wrk's completed requests ({wrk_requests})")
    if errors:
        problems.append(f"errors answered {errors}")
    if c4xx > disconnects:
        problems.append(f"{c4xx - disconnects:.0f} answers 4xx under the key that were not a client going away")
    if ok2xx >= wrk_requests and ok2xx - wrk_requests + c4xx > in_flight_bound:
        problems.append(f"{ok2xx - wrk_requests:.0f} answers not read by wrk and {c4xx:.0f} cancelled: more than can be "
                        f"in flight when its runs end ({in_flight_bound})")
    if not ok2xx:
        problems.append("no request counted under the key")
    if not cost:
        problems.append("no cost charged to the key (the budget path did not run)")
    out["problems"] = problems
    out["ok"] = not problems
    return out
