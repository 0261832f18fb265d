"""Golden rulesets on the real kernel (microseg mode, inside the QEMU guest).

For each scenario of tests/golden/, the installed `pve-microseg apply` loads
the scenario's microseg.yaml into a network namespace of its own (so the
kernel's table is exactly the scenario's), and `nft list table bridge
pve_microseg` must equal the reviewed tests/golden/<scenario>.nft, counters
aside.  The host tier compares the same files with the ruleset rendered
without a kernel; together they show that the reviewed text is what the
kernel holds.
"""

import difflib
import re
import tempfile
from pathlib import Path

from . import netns

try:
    import golden                   # the host: tests/ is on sys.path
except ImportError:                 # the guest: python3 -m tests.dataplane.scenario from the repository
    from tests import golden

PROPS = {s: f"pve-microseg apply of tests/golden/{s}.yaml in a fresh namespace; `nft list table` "
            f"equals tests/golden/{s}.nft" for s in golden.SCENARIOS}


def _one(scenario):
    ns = f"golden-{scenario}"[:15]
    netns.run(["ip", "netns", "add", ns])
    try:
        env = golden.pve_tree(Path(tempfile.mkdtemp(prefix="golden-")), scenario)
        setenv = ["env"] + [f"{k}={v}" for k, v in env.items()]
        r = netns.run(setenv + ["pve-microseg", "apply"], ns=ns, check=False)
        if r.returncode != 0:
            return "fail", f"pve-microseg apply: rc={r.returncode} {(r.stdout + r.stderr)[-300:]}"
        listing = netns.run(["nft", "list", "table", "bridge", "pve_microseg"], ns=ns, check=False).stdout
    finally:
        netns.run(["ip", "netns", "del", ns], check=False)
    got, want = golden.normalise(listing), golden.expected(scenario, nd_target=_nft_1_1())
    if got == want:
        return "pass", f"{len(want.splitlines())} lines equal"
    diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "golden", "kernel", lineterm="", n=1)
    return "fail", " | ".join(list(diff)[2:14])


def _nft_1_1():
    """nftables >= 1.1 here (Debian 13): the golden file's rule that binds a
    neighbour advertisement's target must be loaded; with 1.0.6 it must not.
    Read from `nft --version`, not from pve-microseg's own probe."""
    out = netns.run(["nft", "--version"], check=False).stdout
    m = re.search(r"v(\d+)\.(\d+)", out)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (1, 1)


def run():
    return {f"golden/{s}": _one(s) for s in golden.SCENARIOS}
