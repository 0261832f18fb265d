"""Package lifecycle on the real kernel (microseg mode, last, inside the QEMU guest).

dpkg runs inside node1's network namespace with node1's private state
directories (topology.in_node), so the maintainer scripts act on node1 as
they would on a node: the upgrade to a newer version (the built .deb
repacked with a higher version), the boot unit's command after the rules
were lost, removal, purge.  Every step is checked with real frames: an
attack between guests of node1 (ARP g101 -> g102, sniffed at g102) and the
allowed path (g101 pings its gateway).
"""

import glob
import os
import subprocess
import tempfile

from . import checks, topology
from .probes import pings
from .topology import GATEWAY_IP4

PROPS = {
    "upgrade-from-lib-layout": "dpkg -i of this version over one that shipped its unit and udev rule under /lib "
                               "(0.3.0 and earlier): on a merged-/usr system both files survive the move to /usr/lib",
    "upgrade-keeps-rules": "dpkg -i of a newer version on node1: the table stays, guest -> guest stays blocked, "
                           "guest -> gateway works",
    "boot-unit-reconciles": "after the rules are lost (nft delete table), the installed boot unit's command "
                            "(its ExecStart; systemd does not run in the guest) brings them back: blocked again, "
                            "gateway reachable",
    "remove-takes-rules-out": "dpkg -r on node1: the table is gone, guest -> guest gets through (isolation "
                              "really was the package), guest -> gateway works",
    "purge-leaves-config": "dpkg -P: /var/lib/pve-microseg and /run/pve-microseg are gone, /etc/pve/microseg.yaml "
                           "and the guests' firewall files stay",
}
NODE = "node1"


def _table(node):
    r = topology.in_node(node, "nft list table bridge pve_microseg", check=False)
    return r.returncode == 0 and "fwd-vnet1" in r.stdout


def _paths_state(wire):
    a, v = checks.ATTACKER, checks.GUEST[102]
    res = checks.run_attacks_on_the_wire(wire, a, [v], props={"arp-request"})
    attack, _ = res[f"arp-request/{checks.pair(a, v)}"]
    ok, summary = pings({"gw": (a.ns, GATEWAY_IP4)})["gw"]
    return attack, ok, summary


def _repack(deb, workdir, suffix, layout_lib=False):
    """The built .deb with its version changed (`suffix` appended) and, with
    layout_lib, usr/lib/{systemd,udev} moved back to lib/ (the layout of 0.3.0
    and earlier, built by Debian 12's debhelper)."""
    root = os.path.join(workdir, "pkg" + suffix)
    subprocess.run(["dpkg-deb", "-R", deb, root], check=True)
    control = os.path.join(root, "DEBIAN", "control")
    text = open(control).read()
    version = next(l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("Version:"))
    open(control, "w").write(text.replace(f"Version: {version}", f"Version: {version}{suffix}"))
    if layout_lib:
        os.makedirs(os.path.join(root, "lib"))
        for d in ("systemd", "udev"):
            os.rename(os.path.join(root, "usr", "lib", d), os.path.join(root, "lib", d))
        sums = os.path.join(root, "DEBIAN", "md5sums")
        text = open(sums).read()
        open(sums, "w").write(text.replace("  usr/lib/systemd/", "  lib/systemd/").replace("  usr/lib/udev/", "  lib/udev/"))
    out = os.path.join(workdir, f"pve-microseg_{version}{suffix}_all.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", root, out], check=True, capture_output=True)
    return out


# dpkg runs the postinst (py3compile, apply) under software emulation: on a
# loaded machine that took more than 120 s once; a slow machine is not a failure
DPKG_TIMEOUT = 900

MOVED = ("/usr/lib/systemd/system/pve-microseg.service", "/usr/lib/udev/rules.d/60-pve-microseg.rules")


def run(wire):
    out = {}
    # the ifupdown2 lifecycle ended with 'ifdown vnet1' on node1: bring it back (the hook loads its rules)
    topology.ifupdown([NODE], "ifup vnet1")
    topology.plug_guests(nodes=[NODE], create=False)
    deb = sorted(glob.glob("dist/pve-microseg_*_all.deb"))[-1]
    with tempfile.TemporaryDirectory() as tmp:
        older = _repack(deb, tmp, "~lib1", layout_lib=True)
        newer = _repack(deb, tmp, "+upgrade1")
        r0 = topology.in_node(NODE, f"dpkg -i {older}", check=False, timeout=DPKG_TIMEOUT)
        before = [os.path.exists(f) for f in MOVED]
        r = topology.in_node(NODE, f"dpkg -i {newer}", check=False, timeout=DPKG_TIMEOUT)
        after = [os.path.exists(f) for f in MOVED]
        ok = r0.returncode == 0 and r.returncode == 0 and all(before) and all(after)
        out["upgrade-from-lib-layout"] = (ok, f"dpkg -i /lib layout rc={r0.returncode}, files {before}; "
                                              f"dpkg -i /usr/lib layout rc={r.returncode}, files {after}")
        attack, gw, summary = _paths_state(wire)
        ok = r.returncode == 0 and _table(NODE) and attack == checks.BLOCKED and gw
        out["upgrade-keeps-rules"] = (ok, f"dpkg rc={r.returncode}; table {_table(NODE)}; "
                                          f"attack {attack}; gateway ping {summary}")

    topology.in_node(NODE, "nft delete table bridge pve_microseg", check=False)
    lost, _, _ = _paths_state(wire)
    unit = "/usr/lib/systemd/system/pve-microseg.service"
    exec_start = next((l.split("=", 1)[1] for l in open(unit).read().splitlines()
                       if l.startswith("ExecStart=")), "")
    r = topology.in_node(NODE, exec_start, check=False)
    attack, gw, summary = _paths_state(wire)
    ok = lost == checks.DELIVERED and r.returncode == 0 and attack == checks.BLOCKED and gw
    out["boot-unit-reconciles"] = (ok, f"without table: {lost}; '{exec_start}' rc={r.returncode}; "
                                       f"after: {attack}; gateway {summary}")

    r = topology.in_node(NODE, "dpkg -r pve-microseg", check=False, timeout=DPKG_TIMEOUT)
    attack, gw, summary = _paths_state(wire)
    ok = r.returncode == 0 and not _table(NODE) and attack == checks.DELIVERED and gw
    out["remove-takes-rules-out"] = (ok, f"dpkg -r rc={r.returncode}: {(r.stdout + r.stderr).strip()[-160:]}; "
                                         f"table {_table(NODE)}; attack {attack}; gateway {summary}")

    # in the node these two are bind mounts (per-node state), so they stay as empty directories
    r = topology.in_node(NODE, "dpkg -P pve-microseg >/dev/null 2>&1; echo rc=$?; "
                               "ls -A /var/lib/pve-microseg /run/pve-microseg 2>/dev/null | grep -v ':$' | grep . "
                               "|| echo 'no files of ours left'; ls /etc/pve/microseg.yaml /etc/pve/firewall/301.fw",
                         check=False, timeout=DPKG_TIMEOUT)
    ok = ("rc=0" in r.stdout and "no files of ours left" in r.stdout
          and "/etc/pve/microseg.yaml" in r.stdout and "/etc/pve/firewall/301.fw" in r.stdout)
    out["purge-leaves-config"] = (ok, r.stdout.strip().replace("\n", " | ")[-240:])
    return {f"package/{k}": ("pass" if ok else "fail", d) for k, (ok, d) in out.items()}
