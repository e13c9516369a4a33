"""Runs a script's checks one after another and reports each: every failure is printed with
its traceback, then counted; the last line is `<name>: N passed, M failed`, which the Rust
test (crates/proxy/tests/api/sdk.rs) reads."""

import sys
import traceback


def run(name, checks):
    failed = 0
    for check in checks:
        try:
            check()
            print(f"ok     {check.__name__}")
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAILED {check.__name__}")
            traceback.print_exc(file=sys.stdout)
    print(f"{name}: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0
