"""Who can reach whom, before and after pve-microseg -- on a real kernel.

    /usr/bin/python3 -m tests.dataplane.demo          (from the repo root; `make demo`)

Boots Debian 12's kernel under QEMU (tests/guest/run-in-guest.sh), builds a
simulated two-node Proxmox cluster (network namespaces, the real ifupdown2,
an SDN VLAN zone, an EVPN-like zone where each node is the gateway, tagged
NICs on a plain bridge), runs every check without rules, then installs
pve-microseg, writes /etc/pve/microseg.yaml and runs `ifreload -a` on each
node (what an SDN apply does), and runs every check again.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import guest, pictures
from .checks import ATTACK_PROPS, ATTACKER, GATEWAY_PROPS, VICTIMS
from .topology import GATEWAY_IP4, GATEWAY_IP6, GATEWAY_MAC, GUESTS

PLACE = {v.ns: ("same node" if v.node == ATTACKER.node else "other node") for v in VICTIMS}


def progress(line):
    if line.startswith("[scenario]") and ":" in line and " s" in line:
        sys.stdout.write("  " + line)


class Progress:
    def write(self, line):
        progress(line)

    def flush(self):
        sys.stdout.flush()


def reach(run, prefix_pairs):
    """'yes' if any check in prefix_pairs was delivered."""
    return any(run.rows.get(name, {}).get("observed") == "delivered" for name in prefix_pairs)


def who_reaches_whom(before, after):
    print("\nWho can reach whom (any frame delivered: ARP/ND, unicast, broadcast, spoofing)")
    print(f"  {'from':<26}{'to':<38}{'no rules':<12}pve-microseg")
    for g in GUESTS:
        names = [f"{p}/{g.ns}" for p in GATEWAY_PROPS]
        ok = lambda run: all(run.rows.get(n, {}).get("observed") == "delivered" for n in names)
        print(f"  {g.ns + ' (' + g.label + ')':<26}{'gateway':<38}"
              f"{'yes' if ok(before) else 'NO':<12}{'yes' if ok(after) else 'NO'}"
              f"   ({len(names)} checks: ARP, ND, ping v4/v6 both ways, DHCP)")
    for v in VICTIMS:
        names = [f"{p}/{ATTACKER.ns}->{v.ns}" for p in ATTACK_PROPS]
        b, a = reach(before, names), reach(after, names)
        print(f"  {ATTACKER.ns + ' (' + ATTACKER.label + ')':<26}{v.ns + ' (' + v.label + ', ' + PLACE[v.ns] + ')':<38}"
              f"{'yes' if b else 'no':<12}{'yes' if a else 'no'}")


def show_pictures(before, after):
    """The same, drawn (pve-microseg graph's picture), next to the matrix."""
    where = Path(os.environ.get("DEMO_PICTURES") or pictures.DEFAULT_DIR)
    try:
        written = pictures.write(before, after, where)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"  (no pictures: {e})")
        return
    print("  pictures: " + ", ".join(str(p) for p in written)
          + ("" if any(p.suffix == ".svg" for p in written) else "  (apt install graphviz for .svg)"))


def attack_table(before, after):
    print(f"\nWhat {ATTACKER.ns} (a compromised guest) can do to the others, observed at the victim")
    width = max(map(len, ATTACK_PROPS)) + 2
    cols = "".join(f"{v.ns + ' (' + PLACE[v.ns] + ')':<24}" for v in VICTIMS)
    print(f"  {'attack':<{width}}{cols}")
    for p in ATTACK_PROPS:
        cells = ""
        for v in VICTIMS:
            b = before.rows[f"{p}/{ATTACKER.ns}->{v.ns}"]["observed"]
            a = after.rows[f"{p}/{ATTACKER.ns}->{v.ns}"]["observed"]
            cells += f"{('open' if b == 'delivered' else 'blocked') + ' -> ' + ('OPEN' if a == 'delivered' else 'blocked'):<24}"
        print(f"  {p:<{width}}{cells}")


def explanations(before, after):
    print("\nBlocked by pve-microseg, and what each attack would have let a guest do:")
    for p, (what, impact) in ATTACK_PROPS.items():
        names = [f"{p}/{ATTACKER.ns}->{v.ns}" for v in VICTIMS]
        if all(after.rows[n]["observed"] == "blocked" for n in names):
            was_open = sum(before.rows[n]["observed"] == "delivered" for n in names)
            print(f"  {p:<20} {what}: would let a guest {impact}"
                  f" (open to {was_open}/{len(names)} victims without rules)")
        else:
            print(f"  {p:<20} NOT BLOCKED: {what} -- {impact}")


def other_shapes(before, after):
    """The zone where the node is the gateway, and tagged NICs on a plain bridge."""
    for prefix, title in (("routed/", "an EVPN VNet (evnet), where each node is the gateway"),
                          ("vlantag/", "NICs with tag=100 on vmbr0 (not VLAN-aware): plugged into vmbr0v100")):
        print(f"\n{title}:")
        print(f"  {'check':<44}{'no rules':<12}pve-microseg")
        for name, row in after.rows.items():
            if name.startswith(prefix):
                b = before.rows.get(name, {}).get("observed", "-")
                print(f"  {name[len(prefix):]:<44}{b:<12}{row['observed']}"
                      + ("" if row["observed"] == row["expected"] else "   <- NOT AS EXPECTED"))
                if row["kind"] == "attack" and name.endswith(("same-node", "->g106")):
                    print(f"  {'':<44}{row['description']}")


def port_security(after):
    print("\nport security for a VM created after apply, without the hookscript (the udev rule binds it):")
    for r in (r for r in after.data["results"] if r["kind"] == "portsec"):
        print(f"  {'ok  ' if r['observed'] == 'pass' else 'FAIL'} {r['description']}")


def main():
    print(__doc__.strip().splitlines()[0])
    print(f"gateway {GATEWAY_IP4} / {GATEWAY_IP6}, MAC {GATEWAY_MAC}; guests: "
          + ", ".join(f"{g.ns} {g.label} ({g.port})" for g in GUESTS))
    warning = guest.stale_deb_warning()
    if warning:
        print(f"WARNING: {warning}")
    out = tempfile.mkdtemp(prefix="pve-microseg-demo-")
    release = os.environ.get("DEMO_RELEASE") or "bookworm"
    if release not in guest.GUEST_SCRIPTS:
        print(f"RELEASE={release}: expected one of {', '.join(guest.GUEST_SCRIPTS)}")
        return 2
    print(f"booting a {guest.RELEASE_NAMES[release]} guest (TCG, about 3 minutes"
          + (", plus 2-3 minutes to build its root file system the first time" if release == "trixie" else "")
          + ")...")
    try:
        runs = guest.boot("none,microseg", out, echo=Progress(), release=release)
    except guest.Unavailable as e:
        print(f"cannot run the demo here: {e}")
        return 2
    finally:
        shutil.rmtree(out, ignore_errors=True)
    before, after = runs["none"], runs["microseg"]
    print(f"pve-microseg installed with: {after.data['install'].get('pve-microseg', '-')}")
    who_reaches_whom(before, after)
    show_pictures(before, after)
    attack_table(before, after)
    explanations(before, after)
    other_shapes(before, after)
    port_security(after)
    life = [r for r in after.data["results"] if r["kind"] == "lifecycle"]
    print("\nifupdown2 keeps the rules in step with the network configuration:")
    for r in life:
        print(f"  {'ok  ' if r['observed'] == 'pass' else 'FAIL'} {r['description']}")
    print("\nthe guest hookscript, at container start on a plain bridge marked isolate-ports:")
    for r in (r for r in after.data["results"] if r["kind"] == "hookscript"):
        print(f"  {'ok  ' if r['observed'] == 'pass' else 'FAIL'} {r['description']}")
    bad = [r for run in runs.values() for r in run.data["results"] if r["observed"] != r["expected"]]
    print(f"\n{sum(len(r.rows) for r in runs.values()) - len(bad)} of "
          f"{sum(len(r.rows) for r in runs.values())} checks as expected; {after.seconds} s in the guest")
    print("\nnft list table bridge pve_microseg (node1), as loaded by ifupdown2:")
    print("  " + after.data["rulesets"]["node1"].replace("\n", "\n  ").rstrip())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
