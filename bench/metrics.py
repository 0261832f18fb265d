#!/usr/bin/python3
"""Issue 13: the Prometheus textfile refresh for 4,000 guest ports.

    /usr/bin/python3 bench/metrics.py [--ports 4000] [--bridges 40] [--classes 4] [--reps 15] [--out PREFIX]

Three parts, median and p10-p90 of --reps runs, wall clock on this machine:

  render  policy/metrics.py render() of a synthetic Snapshot: --ports guest
          ports on --bridges bridges, each with drop counters in --classes
          classes (packets and bytes), plus the uplink of each bridge;
  write   flows/metrics.py publish(): the atomic write (temporary file,
          fsync, rename) of that text;
  flow    the whole `pve-microseg metrics --textfile` flow in-process
          (flows/metrics.metrics) on a fake node tree (tests/conftest.py
          FakeNode): microseg.yaml with --bridges bridges, their ports in
          /sys/class/net/<bridge>/brif, the markers of an apply, and a fake
          nftables whose listing of the table (chains, drop sets) and of the
          bind-mac set has that size, serialised to JSON and parsed again on
          every call as libnftables' answer is (the kernel's own listing
          time is not in it);
  process the same as a process (`python3 -c` calling entry/cli.main with
          the fake nftables): interpreter start-up and imports included.

Writes PREFIX.json (every sample) and PREFIX.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "lib"))

from pve_microseg.flows import metrics as flow  # noqa: E402
from pve_microseg.policy import metrics as policy  # noqa: E402
from pve_microseg.policy.ruleset import DROP_CLASSES  # noqa: E402

PY = "/usr/bin/python3"


def port_names(n_ports, n_bridges):
    """[(bridge, port)]: VMs on tap<vmid>i0, every fourth a container (veth)."""
    out = []
    for i in range(n_ports):
        vmid = 1000 + i
        out.append((f"vnet{i % n_bridges}", f"veth{vmid}i0" if i % 4 == 3 else f"tap{vmid}i0"))
    return out


def drop_counts(ports, n_bridges, classes):
    """{class: {port: (packets, bytes)}}: every guest port in every class, one uplink per bridge."""
    out = {}
    for c, cls in enumerate(classes):
        counts = {p: (7 * (i + 1) + c, 420 * (i + 1) + 60 * c) for i, (_, p) in enumerate(ports)}
        counts.update({f"eth{b}": (3, 180) for b in range(n_bridges)})
        out[cls] = counts
    return out


def synthetic_snapshot(ports, n_bridges, counts):
    bridges = tuple(policy.BridgeState(f"vnet{b}", False, "", True, True, True) for b in range(n_bridges))
    states = tuple(policy.PortState(p, b, b, "unbound" if i % 100 == 0 else "protected")
                   for i, (b, p) in enumerate(ports))
    bridge_of = {p: b for b, p in ports}
    rows = []
    for cls, by_port in counts.items():
        for p, (packets, nbytes) in by_port.items():
            owner = policy.port_owner(p)
            rows.append({"vmid": owner[0] if owner else None, "nic": f"net{owner[1]}" if owner else None,
                         "port": p, "bridge": bridge_of.get(p), "class": cls, "packets": packets, "bytes": nbytes})
    return policy.Snapshot(time.time(), 0.1, "bench", "pve1", bridges=bridges, ports=states,
                           bindings=len(ports), drops=tuple(rows), config_digest="0" * 16, config_timestamp=1.0)


def listing(n_bridges, ports, counts):
    """(the table, the bind-mac set's elements) as libnftables answers them: JSON text."""
    table = [{"chain": {"name": f"{kind}-vnet{b}"}} for b in range(n_bridges) for kind in ("fwd", "pre")]
    table += [{"set": {"family": "bridge", "table": "pve_microseg", "name": f"drops-{cls}", "type": "ifname",
                       "elem": [{"elem": {"val": p, "counter": {"packets": a, "bytes": b}}}
                                for p, (a, b) in by_port.items()]}} for cls, by_port in counts.items()]
    bind = [{"concat": [p, f"bc:24:11:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"]}
            for i, (_, p) in enumerate(ports)]
    return json.dumps({"nftables": table}), json.dumps(bind)


class ListingNft:
    """A fake nftables answering with that listing, parsed on every call as
    libnftables' JSON answer is."""

    def __init__(self, table_json, bind_json):
        self.table, self.bind = table_json, bind_json

    def __call__(self, dry_run=False):
        return self

    def list_table(self, family, table):
        return json.loads(self.table)["nftables"]

    def list_meters(self, family, table):
        return []

    def set_elements(self, family, table, name):
        return json.loads(self.bind) if name == "bind-mac" else []


def fake_tree(root, n_bridges, ports):
    from conftest import FakeNft, FakeNode
    from pve_microseg.edges.paths import Paths
    from pve_microseg.flows import reconcile
    n = FakeNode(root)
    yaml = ["bridges:"] + [line for b in range(n_bridges) for line in (
        f"  vnet{b}:", f"    gateway-mac: 02:00:00:00:{b >> 8:02x}:{b & 255:02x}",
        f"    gateway-ip: 10.{b >> 8}.{b & 255}.1")]
    n.write_config("\n".join(yaml) + "\n")
    for b in range(n_bridges):
        n.add_bridge(f"vnet{b}")
        (n.paths.sys_class_net / f"vnet{b}" / "brif" / f"eth{b}").mkdir(parents=True)
    for b, p in ports:
        (n.paths.sys_class_net / b / "brif" / p).mkdir(parents=True)
    n.env["PVE_MICROSEG_TEXTFILE_DIR"] = str(root / "textfile")
    (root / "textfile").mkdir()
    n.paths = Paths.from_env(n.env)
    reconcile.apply(n.paths, FakeNft())
    return n


def timed(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def summary(samples):
    s = sorted(samples)
    q = statistics.quantiles(s, n=10) if len(s) >= 2 else [s[0]] * 9
    return {"median": statistics.median(s), "p10": q[0], "p90": q[-1], "n": len(s)}


PROCESS = """
import sys
sys.path[:0] = [{bench!r}, {tests!r}, {lib!r}]
from pve_microseg.entry import cli
from metrics import ListingNft
with open({table!r}) as t, open({bind!r}) as b:
    cli.Nft = ListingNft(t.read(), b.read())
sys.exit(cli.main(["metrics", "--textfile"], environ={env!r}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", type=int, default=4000)
    ap.add_argument("--bridges", type=int, default=40)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--out", help="results prefix (default bench/results/<date>-metrics)")
    a = ap.parse_args()
    classes = tuple(DROP_CLASSES)[:a.classes]
    ports = port_names(a.ports, a.bridges)
    counts = drop_counts(ports, a.bridges, classes)
    res = {"ports": a.ports, "bridges": a.bridges, "classes": list(classes), "reps": a.reps,
           "python": sys.version.split()[0], "cpus": os.cpu_count()}

    snap = synthetic_snapshot(ports, a.bridges, counts)
    text = policy.render(snap)
    res["text-bytes"], res["text-lines"] = len(text.encode()), text.count("\n")
    res["drop-series"] = len(snap.drops)
    res["render"] = timed(lambda: policy.render(snap), a.reps)
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "pve_microseg.prom"
        res["write"] = timed(lambda: flow.publish(target, text), a.reps)

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        n = fake_tree(root, a.bridges, ports)
        table_json, bind_json = listing(a.bridges, ports, counts)
        nft = ListingNft(table_json, bind_json)
        target = n.paths.textfile
        result = flow.metrics(n.paths, nft, target)
        assert result.data["up"], result.warnings
        full = target.read_text()
        res["flow-text-bytes"] = len(full.encode())
        res["flow-drop-series"] = sum(1 for line in full.splitlines() if line.startswith("pve_microseg_drops_total{"))
        res["nft-listing-bytes"] = len(table_json) + len(bind_json)
        res["flow"] = timed(lambda: flow.metrics(n.paths, nft, target), a.reps)

        (root / "table.json").write_text(table_json)
        (root / "bind.json").write_text(bind_json)
        code = PROCESS.format(bench=str(HERE), tests=str(REPO / "tests"), lib=str(REPO / "lib"),
                              table=str(root / "table.json"), bind=str(root / "bind.json"), env=n.env)

        def process():
            r = subprocess.run([PY, "-c", code], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            assert r.stdout == "", r.stdout
        res["process"] = timed(process, max(5, a.reps // 3))

    prefix = a.out or str(REPO / "bench" / "results" / (time.strftime("%Y-%m-%dT%H%M%S", time.gmtime()) + "-metrics"))
    Path(prefix + ".json").write_text(json.dumps(res, indent=1) + "\n")
    md = [f"# Prometheus textfile refresh: {a.ports} guest ports, {a.bridges} bridges, {a.classes} drop classes",
          "", f"`/usr/bin/python3 bench/metrics.py --ports {a.ports} --bridges {a.bridges} --classes {a.classes} "
          f"--reps {a.reps}` (Python {res['python']}, {res['cpus']} CPUs, wall clock)", "",
          f"Textfile: {res['text-bytes']:,} bytes, {res['text-lines']:,} lines, {res['drop-series']:,} drop series "
          f"(x2: packets and bytes); the flow's file: {res['flow-text-bytes']:,} bytes, "
          f"{res['flow-drop-series']:,} drop series.", "",
          "| part | median | p10-p90 | runs |", "|---|---|---|---|"]
    labels = {"render": "render (policy/metrics.py)", "write": "atomic write (fsync, rename)",
              "flow": "whole flow in-process (fake node tree, fake nft listing as JSON)",
              "process": "whole flow as a process (python3 start-up and imports included)"}
    for key, label in labels.items():
        s = summary(res[key])
        res[key + "-summary"] = s
        md.append(f"| {label} | {s['median'] * 1000:.1f} ms | {s['p10'] * 1000:.1f}-{s['p90'] * 1000:.1f} ms | {s['n']} |")
    Path(prefix + ".json").write_text(json.dumps(res, indent=1) + "\n")
    Path(prefix + ".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"\nwrote {prefix}.json and .md")


if __name__ == "__main__":
    main()
