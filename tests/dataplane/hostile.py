"""The if-up.d hook against a configuration it cannot read and a state
directory it cannot write (microseg mode, inside the QEMU guest; issue 12).

Principle under test: an input the hook cannot read, or a side effect it
cannot perform (the last-good cache, the markers, the lock), never keeps it
from loading the rules it can determine -- the cached last-good state when
nothing else.  Each case on node1:

1. `pve-microseg apply` with the good configuration (it also writes the
   last-good cache), then `ifdown vnet1`: the hook removes vnet1's rules, and
   the check first confirms they are gone (so what follows is the hook's work);
2. the case's damage: microseg.yaml replaced by something pathological, or the
   state directories made unwritable for the next command only (a mount in
   that command's own mount namespace), with a valid configuration that changed
   since the cache was written (so the hook must try to write it);
3. `ifup vnet1` (ifupdown2 runs the if-up.d hook), the guest ports plugged again;
4. real frames: g101 -> g102 ARP must be blocked (vnet1 has rules again), g101
   must still ping its gateway (its port binding holds);
5. the good configuration back.
"""

import time

from . import checks, topology
from .cluster import PVE
from .probes import pings
from .topology import GATEWAY_IP4

NODE = "node1"
CONFIG = PVE / "microseg.yaml"
RESTRICTED = "setpriv --bounding-set -dac_override,-dac_read_search "      # root without its DAC override

# case -> what is done (each pairs a configuration the hook cannot read with
# a state directory it cannot write, where the two can go together)
CASES = {
    "nested-40000-levels-run-dir-read-only": "microseg.yaml nested 40,000 levels deep (80 KB of '[': the C "
                                             "YAML loader's stack overflows on it); /run/pve-microseg read-only",
    "2mib-file-state-read-only": "microseg.yaml of 2 MiB (more than pmxcfs allows); /var/lib/pve-microseg "
                                 "read-only",
    "invalid-utf8-state-and-run-read-only": "microseg.yaml with bytes that are not UTF-8; /var/lib/pve-microseg "
                                            "and /run/pve-microseg read-only",
    "directory-run-dir-a-file": "a directory in place of microseg.yaml; PVE_MICROSEG_RUN_DIR names a regular file",
    "unreadable": "microseg.yaml mode 000, the hook running as root without CAP_DAC_OVERRIDE",
    "changed-config-state-full": "a changed, valid microseg.yaml (the last good cache must be rewritten); "
                                 "/var/lib/pve-microseg a full tmpfs",
    "changed-config-state-read-only": "a changed, valid microseg.yaml (the last good cache must be rewritten); "
                                      "/var/lib/pve-microseg and /run/pve-microseg read-only",
}
PROPS = {name: f"{what}: ifup vnet1 loads vnet1's rules (last good or live), g101 -> g102 blocked, "
               "g101 -> gateway works" for name, what in CASES.items()}

RO_STATE = "mount -o remount,bind,ro /var/lib/pve-microseg && "
RO_RUN = "mount -o remount,bind,ro /run/pve-microseg && "
FULL_STATE = ("mkdir -p /run/dataplane-full && mount -t tmpfs -o size=256k tmpfs /run/dataplane-full && "
              "cp -a /var/lib/pve-microseg/. /run/dataplane-full/ && "
              "mount --bind /run/dataplane-full /var/lib/pve-microseg && "
              "{ dd if=/dev/zero of=/var/lib/pve-microseg/fill bs=1k 2>/dev/null; true; } && ")
# cases after which the run directory's markers may not match the kernel: `apply` first
UNRECORDED = ("nested-40000-levels-run-dir-read-only", "invalid-utf8-state-and-run-read-only",
              "directory-run-dir-a-file", "changed-config-state-read-only")


def _table(node=NODE):
    r = topology.in_node(node, "nft list table bridge pve_microseg", check=False)
    return r.returncode == 0 and "fwd-vnet1" in r.stdout


def _restore(good):
    if CONFIG.is_symlink() or CONFIG.is_file():
        CONFIG.unlink()
    elif CONFIG.is_dir():
        CONFIG.rmdir()
    CONFIG.write_text(good)


def _damage(case, good):
    """Do the case's damage to microseg.yaml; return the shell prefix of `ifup vnet1`."""
    if case.startswith("nested-40000-levels"):
        CONFIG.write_text("[" * 40000 + "]" * 40000 + "\n")
    elif case.startswith("2mib-file"):
        CONFIG.write_text(good + "#" * (2 << 20) + "\n")
    elif case.startswith("invalid-utf8"):
        CONFIG.write_bytes(good.encode() + b"# \xff\xfe\xc3\x28\n")
    elif case.startswith("directory"):
        CONFIG.unlink()
        CONFIG.mkdir()
    elif case == "unreadable":
        CONFIG.chmod(0)
        return RESTRICTED
    else:
        CONFIG.write_text(good + f"\n# changed {time.time()}\n")
    if case.endswith("run-dir-a-file"):
        bad = topology.node_dir(NODE) / "not-a-directory"
        bad.write_text("a file\n")
        return f"PVE_MICROSEG_RUN_DIR={bad} "
    if case.endswith("state-full"):
        return FULL_STATE
    for kind, prefix in (("state-and-run-read-only", RO_STATE + RO_RUN), ("run-dir-read-only", RO_RUN),
                         ("state-read-only", RO_STATE)):
        if case.endswith(kind):
            return prefix
    raise ValueError(f"unknown case {case}")


def _one(wire, case, good, setup):
    note = ""
    if setup:
        r = topology.in_node(NODE, "pve-microseg apply >/dev/null 2>&1; echo rc=$?", check=False)
        note = f"apply first: {r.stdout.strip()}; "
    topology.ifupdown([NODE], "ifdown vnet1")
    gone = not _table()
    prefix = _damage(case, good)
    try:
        r = topology.ifupdown([NODE], f"{prefix}ifup vnet1")[NODE]
    finally:
        if case == "unreadable":
            CONFIG.chmod(0o644)
        _restore(good)
    topology.plug_guests(nodes=[NODE], create=False)
    a, v = checks.ATTACKER, checks.GUEST[102]
    res = checks.run_attacks_on_the_wire(wire, a, [v], props={"arp-request"})
    attack, _ = res[f"arp-request/{checks.pair(a, v)}"]
    gw_ok, summary = pings({"gw": (a.ns, GATEWAY_IP4)})["gw"]
    table = _table()
    ok = gone and table and attack == checks.BLOCKED and gw_ok
    hook_said = " | ".join(line.strip() for line in r.stdout.splitlines()
                           if "microseg" in line or "Traceback" in line or "rror" in line)[-400:]
    detail = (f"{note}vnet1 rules after ifdown: {not gone}; "
              f"`{prefix.strip()[:60]}{' ' if prefix else ''}ifup vnet1` rc={r.returncode}; vnet1 rules now: {table}; "
              f"g101 -> g102 ARP {attack}; g101 -> gateway {summary}; hook: {hook_said or '-'}")
    return ("pass" if ok else "fail"), detail


def run(wire):
    """{hostile/<case>: (pass|fail, detail)}."""
    # the ifupdown2 lifecycle ended with 'ifdown vnet1' on node1: bring it back
    topology.ifupdown([NODE], "ifup vnet1")
    topology.plug_guests(nodes=[NODE], create=False)
    good = CONFIG.read_text()
    out, setup = {}, False
    for case in CASES:
        try:
            out[f"hostile/{case}"] = _one(wire, case, good, setup)
            setup = case in UNRECORDED
        except Exception as e:          # one case's harness trouble must not hide the others
            _restore(good)
            out[f"hostile/{case}"] = ("fail", f"harness: {type(e).__name__}: {e}")
            setup = True
    # leave node1 as the package checks expect it: every rule loaded from the good configuration
    topology.in_node(NODE, "pve-microseg apply", check=False)
    topology.plug_guests(nodes=[NODE], create=False)
    return out

