"""Golden files: the generated ruleset of a few scenarios, in nft syntax.

Each `<scenario>.yaml` is a microseg.yaml (with, in `<scenario>.pve/`, more
files of /etc/pve: guest configs, .vmlist; this node is pve1);
`<scenario>.nft` is what
`nft list table bridge pve_microseg` shows once pve-microseg loaded it with
nftables >= 1.1 (Debian 13), reviewed like code; with 1.0.6 (Debian 12) the
one rule marked "(nftables >= 1.1)" is missing (expected()).  The host tier renders the ruleset without a kernel
(policy/nftsyntax.py) and compares; the QEMU tier loads it with the installed
`pve-microseg apply` into a fresh network namespace and compares the
kernel's own listing (tests/dataplane/scenario.py).

To review a change to the rules: `make golden` rewrites the .nft files from
the current code, and `git diff tests/golden` shows what changed.
"""

import ipaddress
import re
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Proxmox's own SDN running-config fixture (a Simple zone: vnet0 dual-stack, vnet1)
RUNNING_CONFIG = HERE.parent / "fixtures/proxmox-ve-rs/proxmox-ve-config/tests/sdn/resources/running-config.json"
SCENARIOS = tuple(sorted(p.stem for p in HERE.glob("*.yaml")))


def pve_tree(root, scenario):
    """A minimal /etc/pve under `root` for the scenario; returns the
    PVE_MICROSEG_* environment that points pve-microseg at it."""
    pve = root / "etc/pve"
    (pve / "sdn").mkdir(parents=True, exist_ok=True)
    (pve / ".version").write_text("1\n")                     # pmxcfs is "mounted"
    (pve / "sdn/.running-config").write_text(RUNNING_CONFIG.read_text())
    (pve / "microseg.yaml").write_text((HERE / f"{scenario}.yaml").read_text())
    extra = HERE / f"{scenario}.pve"
    if extra.is_dir():
        shutil.copytree(extra, pve, dirs_exist_ok=True)
    ifupdown2 = root / "etc/network/ifupdown2/ifupdown2.conf"
    ifupdown2.parent.mkdir(parents=True, exist_ok=True)
    ifupdown2.write_text("addon_scripts_support=1\n")
    return {"PVE_MICROSEG_PVE_DIR": str(pve),
            "PVE_MICROSEG_STATE_DIR": str(root / "var/lib/pve-microseg"),
            "PVE_MICROSEG_RUN_DIR": str(root / "run/pve-microseg"),
            "PVE_MICROSEG_NETWORK_DIR": str(root / "etc/network"),
            "PVE_MICROSEG_SYS_CLASS_NET": str(root / "sys/class/net"),
            "PVE_MICROSEG_NODE": "pve1"}


_COUNTER = re.compile(r"counter packets \d+ bytes \d+")


_SET_ELEMENTS = re.compile(r"(\tset [^{]*\{[^}]*?elements = \{ )(.*?)( \})", re.S)


# nftables 1.0.6 (Debian 12) lists a neighbour advertisement's target as raw
# bytes; 1.1 (Debian 13) lists the same kernel expression as `icmpv6 taddr`
_ND_TARGET_RAW = re.compile(r"@th,64,128 0x([0-9a-f]{32})")


def normalise(listing):
    """A kernel listing with every counter at zero (a fresh load has zero
    anyway; a frame in flight must not fail the comparison), each set's
    elements sorted, one per line (a hash set lists them in hash order), and
    nftables 1.0.6's raw neighbour-advertisement target printed as 1.1 does."""
    def sort(m):
        items = sorted(e.strip() for e in m.group(2).split(","))
        return m.group(1) + ",\n\t\t\t     ".join(items) + m.group(3)
    listing = _ND_TARGET_RAW.sub(lambda m: f"icmpv6 taddr {ipaddress.IPv6Address(int(m.group(1), 16))}", listing)
    return _SET_ELEMENTS.sub(sort, _COUNTER.sub("counter packets 0 bytes 0", listing))


class _Probe:
    """An nftables edge that only answers the feature question (no kernel)."""

    def __init__(self, nd_target):
        self.nd_target = nd_target

    def __call__(self, dry_run=False):
        return self

    def knows_nd_target(self):
        return self.nd_target


def rendered(scenario, root, nd_target=True):
    """The scenario's table as pve-microseg renders it without a kernel
    (what `pve-microseg show --nft` prints), built in a scratch tree under
    `root`, for nftables >= 1.1 (nd_target) or 1.0.6."""
    from pve_microseg.edges.paths import Paths
    from pve_microseg.entry import render
    from pve_microseg.flows import reconcile
    env = pve_tree(root, scenario)
    result = reconcile.show(Paths.from_env(env), env, _Probe(nd_target))
    return "\n".join(render.show_nft(result.data)) + "\n"


# nftables 1.1 lists a meter (per-port drop counter, or the log's rate limit
# per port) as a set of its own and `add @set { key statement }`
_METER_SET = re.compile(r"\tset ((?:drops|log)-[a-z-]+) \{\n\t\ttype ifname\n\t\tsize (\d+)\n\t\tflags dynamic\n\t\}\n\n")
_METER_ADD = re.compile(r"add @((?:drops|log)-[a-z-]+) \{ ([a-z]+) (counter|limit rate [^}]*[^ }]) \}")


def expected(scenario, nd_target=True):
    """The reviewed table, as nftables >= 1.1 loads it (nd_target) or 1.0.6:
    1.0.6 cannot bind a neighbour advertisement's target (one rule less), and
    lists the drop meters in their rules, not as sets."""
    from pve_microseg.policy.ruleset import ND_TARGET_COMMENT
    text = (HERE / f"{scenario}.nft").read_text()
    if nd_target:
        return text
    sizes = dict(_METER_SET.findall(text))
    text = _METER_SET.sub("", text)
    text = _METER_ADD.sub(lambda m: f"meter {m.group(1)} size {sizes[m.group(1)]} {{ {m.group(2)} {m.group(3)} }}", text)
    return "".join(l for l in text.splitlines(keepends=True) if ND_TARGET_COMMENT not in l)
