#!/usr/bin/python3
"""Benchmark 3: the guest hookscript's pre-start latency (issue 3).

    /usr/bin/python3 bench/prestart.py [--guests 20,2000] [--reps 40] [--baseline REV] [--out F.json]

A simulated cluster (tests/pvesim: a fake /etc/pve tree) with N guests
(half VMs, half containers, each in the IPAM state), 3 managed VNets and one
measured VM with 4 NICs on them.  Cases, round-robin, one process each, as
qm runs the hookscript (`<script> <vmid> pre-start`, no shell):

  python      /usr/bin/python3 -c pass            the bare interpreter start
  write       pre-start with no <vmid>.fw yet      lock, build, write the file
  unchanged   pre-start again (file up to date)    lock, build, compare, no write

Median and p10-p90 in ms per case and per N, measured side by side in one run.
Target: median pre-start <= 60 ms, no growth with N.

--baseline REV runs the same cases with the library of git revision REV too,
interleaved with this tree's (`base-write/N`, `base-unchanged/N`), and prints
the median of the paired differences.  The measured VM's addresses come from
its own config (cloud-init ip=/ip6=), so since issue 12 its pre-start reads
the other guests' configs (one address, one guest): the 2000-guest case is
that cost.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from pvesim import Cluster  # noqa: E402

PY = "/usr/bin/python3"
VNETS = ("web", "db", "app")
MEASURED = 100


def build(root, guests):
    c = Cluster(root)
    script = c.install_hookscript()
    yaml = ["bridges:"]
    for i, v in enumerate(VNETS):
        yaml += [f"  {v}:", f"    gateway-mac: 02:00:00:00:0{i}:01", f"    gateway-ip: 10.{i}.0.1"]
    c.write("microseg.yaml", "\n".join(yaml) + "\n")
    ips = {}
    for n in range(guests):
        vmid = MEASURED + 1 + n
        mac = f"BC:24:11:{vmid >> 16 & 255:02X}:{vmid >> 8 & 255:02X}:{vmid & 255:02X}"
        vnet = VNETS[n % 3]
        ip = f"10.{n % 3}.{n // 250 % 250}.{n % 250 + 2}"
        ips[ip] = {"vmid": str(vmid), "mac": mac, "hostname": f"g{vmid}"}
        if n % 2:
            c.add_ct(vmid, {0: f"name=eth0,bridge={vnet},firewall=1,hwaddr={mac},ip={ip}/16,type=veth"})
        else:
            c.add_vm(vmid, {0: f"virtio={mac},bridge={vnet},firewall=1"}, {0: f"ip={ip}/16"})
    nets, ipconfig = {}, {}
    for i in range(4):
        nets[i] = f"virtio=BC:24:11:FF:00:{i:02X},bridge={VNETS[i % 3]},firewall=1"
        ipconfig[i] = f"ip=10.{i % 3}.255.{i + 10}/16,ip6=2001:db8:{i}::{i + 10}/64"
    c.add_vm(MEASURED, nets, ipconfig)
    c.write("sdn/pve-ipam-state.json", json.dumps(
        {"zones": {"z": {"subnets": {"10.0.0.0/8": {"ips": ips}}}}}))
    return c, script


def timed(argv, env):
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    if r.returncode:
        raise SystemExit(f"{argv}: exit {r.returncode}: {r.stderr.decode()}")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guests", default="20,2000")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--baseline", metavar="REV", help="also time the library of this git revision")
    ap.add_argument("--out")
    args = ap.parse_args()
    counts = [int(x) for x in args.guests.split(",")]
    res = {"meta": {"host": f"{platform.node()} ({platform.release()}, {os.cpu_count()} CPUs)",
                    "reps": args.reps, "python": PY,
                    "git": subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                          capture_output=True, text=True).stdout.strip()},
           "samples": {}}
    # nodes run byte-compiled modules (the package's postinst runs py3compile)
    subprocess.run([PY, "-m", "compileall", "-q", os.path.join(REPO, "lib")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        libs = {"": None}           # prefix -> PYTHONPATH (None: this tree's, as pvesim sets it)
        if args.baseline:
            base = os.path.join(tmp, "baseline")
            os.makedirs(base)
            archive = subprocess.run(["git", "-C", REPO, "archive", args.baseline, "lib"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
            subprocess.run([PY, "-m", "compileall", "-q", os.path.join(base, "lib")], check=True)
            libs["base-"] = os.path.join(base, "lib")
            res["meta"]["baseline"] = args.baseline
        clusters = {n: build(os.path.join(tmp, str(n)), n) for n in counts}
        fw = {n: clusters[n][0].pve / "firewall" / f"{MEASURED}.fw" for n in counts}
        samples = {"python": []}
        kinds = [p + k for p in libs for k in ("write", "unchanged")]
        for n in counts:
            for k in kinds:
                samples[f"{k}/{n}"] = []
        for rep in range(args.reps):
            order = [("python", None)] + [(k, n) for n in counts for k in kinds]
            if rep % 2:
                order.reverse()
            for case, n in order:
                if case == "python":
                    samples["python"].append(timed([PY, "-c", "pass"], os.environ))
                    continue
                c, script = clusters[n]
                prefix = "base-" if case.startswith("base-") else ""
                env = c.env if libs[prefix] is None else dict(c.env, PYTHONPATH=libs[prefix])
                if case.endswith("write") and fw[n].exists():
                    fw[n].unlink()
                if case.endswith("unchanged"):      # the file as this library writes it
                    timed([str(script), str(MEASURED), "pre-start"], env)
                samples[f"{case}/{n}"].append(timed([str(script), str(MEASURED), "pre-start"], env))
        res["samples"] = samples
    print(f"pre-start latency, {args.reps} runs each, interleaved (ms: median [p10-p90])")
    for k, v in samples.items():
        q = statistics.quantiles(v, n=10)
        print(f"  {k:16s} {statistics.median(v):6.1f} [{q[0]:.1f}-{q[-1]:.1f}]")
    base = statistics.median(samples["python"])
    for n in counts:
        print(f"  {n} guests: write {statistics.median(samples[f'write/{n}']) - base:+.1f} ms, unchanged "
              f"{statistics.median(samples[f'unchanged/{n}']) - base:+.1f} ms over the bare interpreter")
    for n in counts:
        for k in ("write", "unchanged"):
            if f"base-{k}/{n}" in samples:
                d = statistics.median(b - a for a, b in zip(samples[f"base-{k}/{n}"], samples[f"{k}/{n}"]))
                print(f"  {n} guests, {k}: this tree {d:+.1f} ms against {args.baseline} (median of paired runs)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
