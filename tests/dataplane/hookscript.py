"""Hookscript checks on the real kernel (microseg mode, inside the QEMU guest).

Proxmox offers `isolate-ports` only for SDN VNets; pve-microseg's hookscript
isolates guest ports of plain bridges marked `isolate-ports: true` at
post-start.  Here two containers (ct301, ct302) sit on a plain bridge vmbr7
of node1; the simulator's `pct start` (tests/pvesim) runs the installed
hookscript in node1's network namespace, as Proxmox would on the node, with
the real /sys of that namespace.  Observed: the firewall file it wrote, the
kernel's port flag, and real pings between the two containers before and
after.  ct303 has no known address: the strict default must refuse its start.
"""

import os
import shutil
import sys
from pathlib import Path

from . import netns

PVE = Path("/etc/pve")
NODE = "node1"
BRIDGE = "vmbr7"
CTS = {301: ("02:00:00:00:03:01", "192.0.2.31"), 302: ("02:00:00:00:03:02", "192.0.2.32"),
       303: ("02:00:00:00:03:03", None)}
INSTALLED = Path("/usr/share/pve-microseg/pve-microseg-hookscript")
PVESIM_BIN = Path(__file__).resolve().parent.parent / "pvesim" / "bin"

PROPS = {
    "ports-talk-before": "before the hookscript runs, ct301 pings ct302 on plain bridge vmbr7 (precondition)",
    "pre-start-writes-sets": "pct start 301: pre-start wrote ipfilter-net0 (its IPv4 + EUI-64 link-local) and ipfilter: 1 into /etc/pve/firewall/301.fw, accepted by the strict checker",
    "post-start-isolates-port": "post-start set veth301i0 and veth302i0 isolated on vmbr7 (kernel flag)",
    "isolated-ports-blocked": "after the starts, ct301 no longer reaches ct302 (real ping, fresh neighbour cache)",
    "strict-refuses-unknown-address": "pct start 303 (ip=dhcp, no IPAM entry, no mapping) is refused: exit non-zero, nothing written",
}


def _ping(src, dst_ip):
    netns.run(["ip", "neigh", "flush", "all"], ns=f"ct{src}", check=False)
    r = netns.run(["ping", "-c", "2", "-i", "0.2", "-W", "1", dst_ip], ns=f"ct{src}", check=False)
    return r.returncode == 0, (r.stdout.strip().splitlines() or [""])[-1]


def setup():
    netns.ip_batch(None, [f"netns add ct{v}" for v in CTS])
    netns.ip_batch(NODE, [f"link add {BRIDGE} type bridge stp_state 0 forward_delay 0",
                          f"link set {BRIDGE} up"])
    for vmid, (mac, ip) in CTS.items():
        netns.ip_batch(NODE, [f"link add veth{vmid}i0 type veth peer name eth0 address {mac} netns ct{vmid}",
                              f"link set veth{vmid}i0 master {BRIDGE} up"])
        netns.ip_batch(f"ct{vmid}", ["link set lo up", "link set eth0 up"]
                       + ([f"addr add {ip}/24 dev eth0"] if ip else []))
        net = f"name=eth0,bridge={BRIDGE},firewall=1,hwaddr={mac},type=veth," + (
            f"ip={ip}/24" if ip else "ip=dhcp")
        conf = PVE / "nodes" / NODE / "lxc" / f"{vmid}.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"arch: amd64\nhookscript: local:snippets/{INSTALLED.name}\n"
                        f"hostname: ct{vmid}\nnet0: {net}\nostype: debian\n")
    (PVE / "local").unlink(missing_ok=True)
    (PVE / "local").symlink_to(f"nodes/{NODE}")
    (PVE / "storage.cfg").write_text("dir: local\n\tpath /var/lib/vz\n\tcontent snippets\n")
    (PVE / "priv" / "lock").mkdir(parents=True, exist_ok=True)
    (PVE / "firewall").mkdir(parents=True, exist_ok=True)
    (PVE / "firewall" / "cluster.fw").write_text("[OPTIONS]\n\nenable: 1\n")
    snippets = Path("/var/lib/vz/snippets")
    snippets.mkdir(parents=True, exist_ok=True)
    shutil.copy(INSTALLED, snippets / INSTALLED.name)
    os.chmod(snippets / INSTALLED.name, 0o755)
    with open(PVE / "microseg.yaml", "a") as f:
        f.write(f"  {BRIDGE}:\n    gateway-mac: 02:00:00:00:03:fe\n    gateway-ip: 192.0.2.1\n"
                "    isolate-ports: true\n")


def pct_start(vmid):
    """The simulator's pct, run in node1's netns (ip netns exec remounts /sys for it)."""
    Path("/run/lock/lxc").mkdir(parents=True, exist_ok=True)
    env = " ".join(f"{k}={v}" for k, v in {"PVE_MICROSEG_PVE_DIR": PVE, "PVE_SIM_LOCK_DIR": "/run/lock/lxc",
                                           "PVE_SIM_NODE": NODE}.items())
    return netns.run(f"env {env} {sys.executable} {PVESIM_BIN / 'pct'} start {vmid}", ns=NODE, check=False)


def isolated(port):
    r = netns.run(["bridge", "-d", "link", "show", "dev", port], ns=NODE, check=False)
    return "isolated on" in r.stdout, r.stdout.strip().replace("\n", " ")[:160]


def run():
    """{check name: (PASS|FAIL, detail)}"""
    from pve_microseg.policy import fwstrict
    out = {}
    setup()
    ok, detail = _ping(301, CTS[302][1])
    out["ports-talk-before"] = (ok, detail)
    r1, r2 = pct_start(301), pct_start(302)
    fw = PVE / "firewall" / "301.fw"
    text = fw.read_text() if fw.exists() else ""
    want = ["[IPSET ipfilter-net0] # managed by pve-microseg", CTS[301][1], "fe80::ff:fe00:301", "ipfilter: 1"]
    ok = r1.returncode == 0 and all(w in text for w in want) and not fwstrict.check(text, "guest")
    out["pre-start-writes-sets"] = (ok, f"rc={r1.returncode} {r1.stderr.strip()[-200:]} file: {text!r}"[:400])
    flags = [isolated(f"veth{v}i0") for v in (301, 302)]
    out["post-start-isolates-port"] = (all(f for f, _ in flags) and r2.returncode == 0,
                                       " | ".join(d for _, d in flags))
    ok, detail = _ping(301, CTS[302][1])
    out["isolated-ports-blocked"] = (not ok, detail)
    r3 = pct_start(303)
    ok = r3.returncode != 0 and "not started" in r3.stderr and not (PVE / "firewall" / "303.fw").exists()
    out["strict-refuses-unknown-address"] = (ok, f"rc={r3.returncode} {r3.stderr.strip()[-300:]}")
    return {f"hookscript/{k}": ("pass" if ok else "fail", d) for k, (ok, d) in out.items()}
