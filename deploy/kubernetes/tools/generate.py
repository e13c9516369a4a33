#!/usr/bin/env python3
"""Writes deploy/kubernetes/base/generated/ from the files the compose stack uses.

    python3 deploy/kubernetes/tools/generate.py           (`make kube-generate`)
    python3 deploy/kubernetes/tools/generate.py --check   exit 1 and name the stale files

kustomize reads nothing outside the kustomization's own folder, so the settings file, the
rule files and the dashboards are copied in, and the copies are checked for drift by
crates/proxy/tests/stack/kubernetes.rs:

- prometheus/rules/*.yml become one PrometheusRule each. A rule file is a mapping with the
  single key `groups`, which is also what a PrometheusRule's `spec` holds, so the file's text
  is placed under `spec:` as it is, comments and all (YAML needs no re-encoding for that).
- grafana/dashboards/*.json are copied byte for byte, each to a ConfigMap labelled for the
  Grafana sidecar of kube-prometheus-stack.
- deploy/mcp-server.yaml is copied without its comments: they are written for readers of that
  file, and they quote the demo client keys' secrets, which have no place in a ConfigMap.

Python 3.11 standard library only: this runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "deploy/kubernetes/base/generated"
RULES = ROOT / "prometheus/rules"
DASHBOARDS = ROOT / "grafana/dashboards"
SETTINGS = ROOT / "deploy/mcp-server.yaml"

# The Grafana sidecar of kube-prometheus-stack loads every ConfigMap with this label.
DASHBOARD_LABEL = ("grafana_dashboard", "1")
# kube-prometheus-stack's Prometheus selects rules (and ServiceMonitors) labelled with the
# Helm release's name; base/servicemonitor.yaml carries the same label, and the README says
# how to change both.
RELEASE_LABEL = ("release", "kube-prometheus-stack")


def banner(source: str, edit: str = "that file") -> str:
    return (
        f"# Generated from {source} by `make kube-generate`"
        f" (deploy/kubernetes/tools/generate.py): edit {edit}, not this one.\n"
    )


def prometheus_rule(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    # The whole file must be the `groups` mapping: any other top-level line (a second key, a
    # document marker, a tab) would end up somewhere else than under `spec`.
    for number, line in enumerate(text.splitlines(), 1):
        if line and not line.startswith((" ", "#")) and line.rstrip() != "groups:":
            sys.exit(f"{path}:{number}: only `groups:` may start a line: {line!r}")
    if "\t" in text:
        sys.exit(f"{path}: tabs cannot be re-indented safely")
    body = "".join(
        f"  {line}" if line.strip() else "\n"
        for line in text.splitlines(keepends=True)
    )
    name = f"mcp-server-{path.stem}"
    return (
        f"{banner(path.relative_to(ROOT).as_posix())}"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  labels:\n"
        "    app.kubernetes.io/name: mcp-server\n"
        "    app.kubernetes.io/component: monitoring\n"
        f"    {RELEASE_LABEL[0]}: {RELEASE_LABEL[1]}\n"
        "spec:\n"
        f"{body}"
    )


def strip_comment(line: str, where: str) -> str:
    """The line without its comment. A `#` starts a comment at the start of a line or after a
    blank, outside quotes. Block scalars and quotes spanning lines are refused rather than
    guessed at: the settings file has none."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"" and (i == 0 or line[i - 1] in " \t[{,:-"):
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            line = line[:i]
            break
    if quote:
        sys.exit(f"{where}: a quoted value continues past the line; extend generate.py")
    stripped = line.rstrip()
    if stripped.endswith((": |", ": >", ": |-", ": >-", ": |+", ": >+")):
        sys.exit(f"{where}: block scalars are not handled; extend generate.py")
    return stripped


def settings() -> str:
    lines = []
    for number, line in enumerate(SETTINGS.read_text(encoding="utf-8").splitlines(), 1):
        kept = strip_comment(line, f"{SETTINGS.relative_to(ROOT)}:{number}")
        if line.strip() and not kept:
            continue  # a comment line, gone with its comment
        # Blank lines stay between sections, but never two in a row.
        if kept or (lines and lines[-1]):
            lines.append(kept)
    while lines and not lines[-1]:
        lines.pop()
    return banner(SETTINGS.relative_to(ROOT).as_posix()) + "\n".join(lines) + "\n"


def kustomization(rule_files: list[str], dashboards: list[str]) -> str:
    out = [
        banner("prometheus/rules, grafana/dashboards and deploy/mcp-server.yaml", "those").rstrip("\n"),
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "",
        "resources:",
        *(f"  - {name}" for name in rule_files),
        "",
        "configMapGenerator:",
        "  # The gateway's settings. The name gets a hash of the content, so that a change of",
        "  # settings rolls the Deployment that mounts it.",
        "  - name: mcp-server-settings",
        "    files:",
        "      - mcp-server.yaml",
    ]
    for name in dashboards:
        out += [
            f"  - name: grafana-dashboard-{Path(name).stem}",
            "    files:",
            f"      - {name}",
            "    options:",
            "      # A stable name: `kubectl apply` replaces the dashboard in place instead of",
            "      # leaving the previous version behind for the sidecar to load as well.",
            "      disableNameSuffixHash: true",
            "      labels:",
            f'        {DASHBOARD_LABEL[0]}: "{DASHBOARD_LABEL[1]}"',
            "        app.kubernetes.io/name: mcp-server",
            "        app.kubernetes.io/component: monitoring",
        ]
    return "\n".join(out) + "\n"


def wanted() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    rule_names = []
    for path in sorted(RULES.glob("*.yml")):
        name = f"prometheusrule-{path.stem}.yaml"
        files[name] = prometheus_rule(path).encode()
        rule_names.append(name)
    dashboard_names = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        files[path.name] = path.read_bytes()
        dashboard_names.append(path.name)
    if not rule_names or not dashboard_names:
        sys.exit(f"no rule files in {RULES} or no dashboards in {DASHBOARDS}")
    files["mcp-server.yaml"] = settings().encode()
    files["kustomization.yaml"] = kustomization(rule_names, dashboard_names).encode()
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when stale")
    args = parser.parse_args()

    files = wanted()
    present = {p.name for p in OUT.iterdir() if p.is_file()} if OUT.is_dir() else set()
    stale = sorted(
        name for name, content in files.items()
        if name not in present or (OUT / name).read_bytes() != content
    )
    extra = sorted(present - files.keys())
    if args.check:
        for name in stale:
            print(f"stale: {OUT.relative_to(ROOT) / name}", file=sys.stderr)
        for name in extra:
            print(f"left over: {OUT.relative_to(ROOT) / name}", file=sys.stderr)
        if stale or extra:
            print("run `make kube-generate`", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (OUT / name).write_bytes(files[name])
        print(f"wrote {OUT.relative_to(ROOT) / name}")
    for name in extra:
        (OUT / name).unlink()
        print(f"removed {OUT.relative_to(ROOT) / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
