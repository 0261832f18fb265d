#!/usr/bin/python3
"""Benchmark 4 (issue 4): `pve-microseg status` over a simulated cluster.

    /usr/bin/python3 bench/status.py [--guests 5000] [--vnets 500] [--nodes 4] [--reps 5]

A simulated cluster (tests/pvesim) with N guests (half VMs, half containers)
spread over the nodes and VNets, each with its hookscript attached and its
sets written (as after a start), the IPAM holding every guest; the other
nodes answer `status --local` through a stand-in ssh that prints a canned
answer (what a node answers; the real ssh round trip is not measured).
Runs `pve-microseg status --output-format json` as a process, median of
--reps, wall clock on this machine. Target: at most 3 s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "lib"))

from pvesim import HOOKSCRIPT, Cluster  # noqa: E402
from pve_microseg.edges import pveconf  # noqa: E402
from pve_microseg.edges.paths import Paths  # noqa: E402
from pve_microseg.model.ipam import EMPTY as NO_IPAM  # noqa: E402
from pve_microseg.parse import addresses, guestconf  # noqa: E402
from pve_microseg.policy import antispoof  # noqa: E402

PY = "/usr/bin/python3"


def build(root, n_guests, n_vnets, n_nodes):
    nodes = [f"pve{i + 1}" for i in range(n_nodes)]
    c = Cluster(root, node=nodes[0], nodes=nodes)
    vnets = [f"v{i}" for i in range(n_vnets)]
    yaml = ["bridges:"]
    for i, v in enumerate(vnets):
        yaml += [f"  {v}:", f"    gateway-mac: 02:00:00:{i >> 8:02x}:{i & 255:02x}:01",
                 f"    gateway-ip: 10.{i >> 8}.{i & 255}.1"]
    c.write("microseg.yaml", "\n".join(yaml) + "\n")
    for v in vnets:
        (c.sys_class_net / v / "bridge").mkdir(parents=True)
    paths = Paths.from_env(c.env)
    paths.applied_dir.mkdir(parents=True)
    for v in vnets:
        (paths.applied_dir / v).write_text("{}")
    cfg = pveconf.config(paths)
    ips, hs = {}, f"local:snippets/{HOOKSCRIPT.name}"
    for n in range(n_guests):
        vmid, vi = 100 + n, n % n_vnets
        mac = f"BC:24:11:{vmid >> 16 & 255:02X}:{vmid >> 8 & 255:02X}:{vmid & 255:02X}"
        ip = f"10.{vi >> 8}.{vi & 255}.{n // n_vnets + 2}"
        ips[ip] = {"vmid": str(vmid), "mac": mac}
        node = nodes[n % n_nodes]
        if n % 2:
            net = f"name=eth0,bridge=v{vi},firewall=1,hwaddr={mac},ip={ip}/24,type=veth"
            path = c.add_ct(vmid, {0: net}, node=node)
            gtype = "lxc"
        else:
            path = c.add_vm(vmid, {0: f"virtio={mac},bridge=v{vi},firewall=1"}, {0: f"ip={ip}/24"}, node=node)
            gtype = "qemu"
        gc = guestconf.parse(path.read_text(), vmid, gtype, path)
        fw, _ = antispoof.edit_fw("", antispoof.plan(gc, cfg, NO_IPAM), cfg.hookscript)
        (c.pve / "firewall" / f"{vmid}.fw").write_text(fw)
    c.write("sdn/pve-ipam-state.json", json.dumps({"zones": {"z": {"subnets": {"10.0.0.0/8": {"ips": ips}}}}}))
    answers = os.path.join(root, "answers")
    os.makedirs(answers)
    for node in nodes[1:]:
        with open(os.path.join(answers, f"{node}.json"), "w") as f:
            json.dump({"node": node, "source": "bench", "bridges": {v: {"present": True, "rules": True}
                                                                    for v in vnets}}, f)
    ssh = os.path.join(root, "ssh")
    with open(ssh, "w") as f:
        f.write(f"#!/bin/sh\nfor a; do case \"$a\" in root@*) n=${{a#root@}};; esac; done\ncat {answers}/$n.json\n")
    os.chmod(ssh, 0o755)
    c.env["PVE_MICROSEG_SSH"] = ssh
    assert addresses                # noqa (imported for the MAC helpers' module warm-up)
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guests", type=int, default=5000)
    ap.add_argument("--vnets", type=int, default=500)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    subprocess.run([PY, "-m", "compileall", "-q", os.path.join(REPO, "lib")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        c = build(tmp, args.guests, args.vnets, args.nodes)
        print(f"built {args.guests} guests, {args.vnets} VNets, {args.nodes} nodes in "
              f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
        env = dict(c.env, PYTHONPATH=os.path.join(REPO, "lib"))
        cmd = [PY, os.path.join(REPO, "bin/pve-microseg"), "status", "--output-format", "json"]
        samples, result = [], None
        for _ in range(args.reps):
            t = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            samples.append(time.perf_counter() - t)
            result = r
        data = json.loads(result.stdout)
    print(f"status: {len(data['guests'])} guests, {len(data['bridges'])} bridges, "
          f"{len(data['problems'])} problems, exit {result.returncode}")
    print(f"wall clock, {args.reps} runs: median {statistics.median(samples):.2f} s "
          f"[{min(samples):.2f}-{max(samples):.2f}]")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"guests": args.guests, "vnets": args.vnets, "nodes": args.nodes,
                       "samples_s": samples, "problems": len(data["problems"])}, f, indent=1)


if __name__ == "__main__":
    main()
