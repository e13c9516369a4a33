"""The baseline build for `bench/run.py --baseline-rev REV`: `mcp-proxy` as it was at another git
revision, to be measured beside the current build in the same runs.

The revision is checked out in a separate, detached git worktree and built there with its own
cargo target dir, so neither the current worktree (its files, index, HEAD) nor its build is
touched. The binary is kept per commit hash, and a later run with the same commit reuses it
without building:

  target/bench-baseline/
    bin/<commit>/mcp-proxy   the binary, one per commit
    target/                  CARGO_TARGET_DIR of the baseline builds (dependencies stay compiled)
    src-<commit>/            the worktree, only while building; removed and pruned afterwards
    .lock                    held while building, so two runs do not build into the same place
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable


def git(root: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *argv], capture_output=True, text=True, check=check)


def resolve(root: Path, rev: str) -> dict:
    """The commit `rev` names: full hash, short hash, subject, commit date."""
    p = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if p.returncode != 0 or not p.stdout.strip():
        raise RuntimeError(f"--baseline-rev {rev!r}: not a commit of this repository")
    commit = p.stdout.strip()
    short = git(root, "rev-parse", "--short", commit).stdout.strip()
    subject, date = git(root, "show", "-s", "--format=%s%n%cI", commit).stdout.strip().split("\n", 1)
    return {"rev": rev, "commit": commit, "short": short, "subject": subject, "date": date}


def cache_dir(root: Path) -> Path:
    return root / "target" / "bench-baseline"


def binary_path(root: Path, commit: str) -> Path:
    return cache_dir(root) / "bin" / commit / "mcp-proxy"


def _remove_worktree(root: Path, path: Path) -> None:
    if path.exists():
        if git(root, "worktree", "remove", "--force", str(path), check=False).returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
    git(root, "worktree", "prune", check=False)


def ensure(root: Path, rev: str, log: Callable[[str], None]) -> dict:
    """The baseline binary for `rev`, built unless one for the same commit is already there.
    Returns the commit's description, the binary's path, whether it was built and how long that
    took."""
    info = resolve(root, rev)
    binary = binary_path(root, info["commit"])
    info["binary"] = str(binary)
    if binary.exists():
        log(f"baseline {rev} = {info['short']} ({info['subject']}): reusing {binary.relative_to(root)}")
        return {**info, "built": False, "build_s": 0.0}
    cache = cache_dir(root)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run building the same: wait for it
        if binary.exists():
            log(f"baseline {rev} = {info['short']}: built meanwhile by another run, reusing it")
            return {**info, "built": False, "build_s": 0.0}
        worktree = cache / f"src-{info['commit']}"
        git(root, "worktree", "prune", check=False)  # registrations whose directory is gone
        _remove_worktree(root, worktree)  # left over by a run that was killed while building
        started = time.monotonic()
        try:
            log(f"baseline {rev} = {info['short']} ({info['subject']}): git worktree add --detach {worktree.relative_to(root)}")
            git(root, "worktree", "add", "--detach", "--quiet", str(worktree), info["commit"])
            target = cache / "target"
            env = dict(os.environ, CARGO_TARGET_DIR=str(target), MCP_REVISION=info["short"])
            log(f"baseline: cargo build --release -p mcp-proxy --bin mcp-proxy (CARGO_TARGET_DIR={target.relative_to(root)})")
            subprocess.run(
                ["cargo", "build", "--release", "-p", "mcp-proxy", "--bin", "mcp-proxy"], cwd=worktree, env=env, check=True,
            )
            built = target / "release" / "mcp-proxy"
            binary.parent.mkdir(parents=True, exist_ok=True)
            partial = binary.with_name("mcp-proxy.partial")
            shutil.copy2(built, partial)
            os.replace(partial, binary)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"building the baseline {rev} ({info['short']}) failed: {e}") from None
        finally:
            _remove_worktree(root, worktree)
        build_s = round(time.monotonic() - started, 1)
        log(f"baseline: built in {build_s:.0f} s, kept as {binary.relative_to(root)}")
        return {**info, "built": True, "build_s": build_s}
