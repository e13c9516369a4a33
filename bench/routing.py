"""The benchmark's "two deployments" gateway: its settings file, and what its /metrics scrape
says about the runs (how the attempts split between the upstreams, and that none failed).

Pure functions of text and dicts, so that they can be checked without a running gateway.
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "gateway-two-deployments.yaml"
PLACEHOLDER = "UPSTREAM_ROOT"

# The attempt outcomes that are failures (docs/metrics.md, `outcome`). `cancelled` is not: wrk
# closes its connections when a run ends, and the attempts then in flight are cancelled.
FAILED_OUTCOMES = (
    "client_error", "rate_limited", "server_error", "timeout", "connect_error", "malformed", "stream_interrupted",
)

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def render_settings(upstream_root: str, template: Path = TEMPLATE) -> str:
    """The template with the upstream API root (e.g. http://127.0.0.1:PORT/v1) filled in."""
    text = template.read_text()
    if PLACEHOLDER not in text:
        raise RuntimeError(f"{template} has no {PLACEHOLDER} to replace")
    return text.replace(PLACEHOLDER, upstream_root)


def upstream_names(settings: str) -> list[str]:
    """The `name`s of the `upstreams:` list, in order (enough YAML for the template above)."""
    names, inside = [], False
    for line in settings.splitlines():
        if re.match(r"^\S", line):
            inside = line.startswith("upstreams:")
            continue
        m = re.match(r"^\s*-\s*name:\s*\"?([\w.-]+)\"?\s*$", line)
        if inside and m:
            names.append(m.group(1))
    return names


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition, keyed by (name, labels)."""
    out: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            continue
    return out


def delta(before: dict, after: dict) -> dict:
    """after - before, sample by sample (a sample absent before counts from 0)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def _by(samples: dict, name: str, *keys: str) -> dict:
    """Sums of a family's samples grouped by the values of `keys` (one key: plain values)."""
    out: dict = {}
    for (n, labels), v in samples.items():
        if n != name:
            continue
        d = dict(labels)
        k = tuple(d.get(key, "") for key in keys)
        k = k[0] if len(k) == 1 else k
        out[k] = out.get(k, 0.0) + v
    return out


def summarize(samples: dict, upstreams: list[str]) -> dict:
    """What the routing did over a scrape delta: attempts per upstream and outcome, the split,
    retries, budget refusals, breaker transitions, queue rejections and waits, attempts per
    request, errors answered; and whether all is as it should be (`ok`, `problems`)."""
    attempts = _by(samples, "mcp_server_upstream_requests_total", "upstream", "outcome")
    success = {u: attempts.get((u, "success"), 0.0) for u in upstreams}
    total_success = sum(success.values())
    failed = {f"{u}/{o}": v for (u, o), v in sorted(attempts.items()) if o in FAILED_OUTCOMES and v}
    cancelled = sum(v for (u, o), v in attempts.items() if o == "cancelled")
    retries = _by(samples, "mcp_server_upstream_retries_total", "upstream")
    budget = _by(samples, "mcp_server_retry_budget_exhausted_total", "upstream")
    transitions = _by(samples, "mcp_server_circuit_breaker_transitions_total", "upstream", "to")
    rejections = _by(samples, "mcp_server_upstream_queue_rejections_total", "upstream", "reason")
    wait_count = _by(samples, "mcp_server_upstream_queue_wait_seconds_count", "upstream")
    wait_sum = _by(samples, "mcp_server_upstream_queue_wait_seconds_sum", "upstream")
    att_sum = sum(_by(samples, "mcp_server_request_attempts_sum", "endpoint").values())
    att_count = sum(_by(samples, "mcp_server_request_attempts_count", "endpoint").values())
    errors = {k: v for k, v in _by(samples, "mcp_server_errors_total", "error_type").items() if v}
    out = {
        "attempts_success": success,
        "share": {u: (v / total_success if total_success else float("nan")) for u, v in success.items()},
        "attempts_failed": failed,
        "attempts_cancelled": cancelled,
        "retries": sum(retries.values()),
        "retry_budget_exhausted": sum(budget.values()),
        "breaker_transitions": {f"{u}->{t}": v for (u, t), v in sorted(transitions.items()) if v},
        "queue_rejections": sum(rejections.values()),
        "queue_waits": {u: wait_count.get(u, 0.0) for u in upstreams},
        "queue_wait_mean_us": {
            u: (1e6 * wait_sum.get(u, 0.0) / wait_count[u] if wait_count.get(u) else float("nan")) for u in upstreams
        },
        "attempts_per_request": att_sum / att_count if att_count else float("nan"),
        "requests_routed": att_count,
        "errors_answered": errors,
    }
    problems = []
    for u, v in success.items():
        if not v:
            problems.append(f"upstream {u} received no successful attempt")
    if failed:
        problems.append(f"failed attempts {failed}")
    if out["retries"]:
        problems.append(f"{out['retries']:.0f} retries")
    if out["retry_budget_exhausted"]:
        problems.append(f"{out['retry_budget_exhausted']:.0f} retries refused by the budget")
    if out["breaker_transitions"]:
        problems.append(f"breaker transitions {out['breaker_transitions']}")
    if out["queue_rejections"]:
        problems.append(f"{out['queue_rejections']:.0f} queue rejections")
    if errors:
        problems.append(f"errors answered {errors}")
    if not any(out["queue_waits"].values()):
        problems.append("no attempt went through the concurrency limit (no queue wait observed)")
    out["problems"] = problems
    out["ok"] = not problems
    return out
