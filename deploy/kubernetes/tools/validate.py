#!/usr/bin/env python3
"""Validates rendered manifests offline, and turns YAML into JSON for the stack tests.

    kubectl kustomize deploy/kubernetes/overlays/demo | .venv/bin/python validate.py validate
        Checks every object against its schema and prints the objects as a JSON array.
        Exit 1, every error on standard error, when an object is invalid or has no schema.
    .venv/bin/python validate.py to-json FILE...      (`-` for standard input)
        Prints a JSON array of the YAML documents of the files.

Built-in kinds are checked with kubernetes-validate, which bundles the schemas of every
Kubernetes release, in its strict form: a field the API does not know is an error, as it is
for `kubectl apply` (server-side field validation is strict by default). They are checked
against the oldest release the manifests support and the newest the package knows.

Prometheus Operator kinds are checked against their CRDs' schemas in ../schemas/, made strict
the same way: unknown fields are refused wherever the CRD lists the known ones (the API server
would reject them too). CEL rules (x-kubernetes-validations) need a server and are not checked.

The packages come from requirements.txt beside this file (scripts/install-k8s-tools.sh).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

# jsonschema and kubernetes_validate are imported where `validate` uses them: they take most of
# a second to load, which `to-json` need not wait for.

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
# libyaml's loader where PyYAML was built with it (its wheels are): ten times the speed.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The oldest Kubernetes release the manifests are written for: every field they use is GA or
# on by default there (matchLabelKeys and nodeTaintsPolicy in topology spread constraints,
# the PodDisruptionBudget's unhealthyPodEvictionPolicy).
OLDEST_KUBERNETES = "1.30"


def kubernetes_versions() -> list[str]:
    from kubernetes_validate import utils as kubernetes_validate

    newest = kubernetes_validate.major_minor(kubernetes_validate.latest_version())
    return sorted({OLDEST_KUBERNETES, newest}, key=lambda v: tuple(map(int, v.split("."))))


def strict(schema: Any) -> Any:
    """The schema with additionalProperties: false wherever properties are listed, unless the
    CRD keeps unknown fields or says what other properties may hold."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validators() -> dict[tuple[str, str], Any]:
    """Validators by (apiVersion, kind), from every CRD under ../schemas."""
    import jsonschema

    validators = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        crd = json.loads(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = strict(version["schema"]["openAPIV3Schema"])
            # CRD schemas are OpenAPI 3.0 schema objects, a dialect of JSON Schema draft 4.
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft4Validator(schema)
    return validators


def describe(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name')}"


def errors(obj: dict, crds: dict) -> Iterator[str]:
    from kubernetes_validate import utils as kubernetes_validate

    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        yield f"not a Kubernetes object: {str(obj)[:80]}"
        return
    key = (obj["apiVersion"], obj["kind"])
    if key in crds:
        for error in sorted(crds[key].iter_errors(obj), key=lambda e: list(e.absolute_path)):
            path = ".".join(str(p) for p in error.absolute_path)
            yield f"{describe(obj)}: {path}: {error.message}"
        return
    for version in kubernetes_versions():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            yield f"{describe(obj)} (Kubernetes {version}): {path}: {error.message}"
        except kubernetes_validate.SchemaNotFoundError as error:
            # An object nothing can check is an error, not a pass.
            yield f"{describe(obj)}: {error.message}"


def validate() -> int:
    objects = [doc for doc in yaml.load_all(sys.stdin, Loader=LOADER) if doc is not None]
    if not objects:
        print("no objects on standard input", file=sys.stderr)
        return 1
    crds = crd_validators()
    found = [message for obj in objects for message in errors(obj, crds)]
    for message in found:
        print(message, file=sys.stderr)
    if found:
        return 1
    json.dump(objects, sys.stdout)
    return 0


def to_json(files: list[str]) -> int:
    documents = []
    for name in files:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        documents.extend(yaml.load_all(text, Loader=LOADER))
    json.dump(documents, sys.stdout)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("validate", help="validate a YAML stream of objects on standard input")
    convert = commands.add_parser("to-json", help="print YAML files as a JSON array")
    convert.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.command == "validate":
        return validate()
    return to_json(args.files)


if __name__ == "__main__":
    sys.exit(main())
