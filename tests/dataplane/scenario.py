"""The dataplane scenario, run INSIDE the QEMU guest (tests/guest/run-in-guest.sh):

    /usr/bin/python3 -m tests.dataplane.scenario --modes none --out DIR
    /usr/bin/python3 -m tests.dataplane.scenario --modes microseg --out DIR
    /usr/bin/python3 -m tests.dataplane.scenario --modes none,microseg --out DIR [--install deb|source|auto]

Installs Debian's ifupdown2 (and, for microseg, our package) into the guest's
tmpfs overlay, builds the two-node cluster, runs the matrix and writes
DIR/results-<mode>.json:
  {"mode", "install", "timings", "results": [{check, kind, expected, observed,
   detail}], "rulesets": {node: nft text}, "ifupdown2": {node: output}}

Mode "none": no rules.  Mode "microseg": pve-microseg installed and
/etc/pve/microseg.yaml written *before* the nodes' `ifup -a` (boot path); when
it follows "none" in the same run, it is applied to the running cluster with
`ifreload -a` instead (what SDN apply runs on every node).

Exit status: 0 when the matrix ran (whatever it observed), 3 when the
package to test is missing (results file has "error"), 1 on a harness error.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

from . import (checks, cluster, droplog, drops, explained, hookscript, hostile, package, portsec, routed, rulesets,
               topology, vlantag)
from .checks import FAIL, PASS
from .topology import NODES, VNET1, VNET2

NFT_TABLE = ("bridge", "pve_microseg")


class MissingPackage(Exception):
    pass


class Clock:
    def __init__(self):
        self.t0 = self.last = time.monotonic()
        self.laps = {}

    def lap(self, name):
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 1)
        self.last = now
        print(f"[scenario] {name}: {self.laps[name]} s", flush=True)

    def total(self):
        return round(time.monotonic() - self.t0, 1)


# ---- installing into the guest's overlay ----------------------------------------------

def product_deb():
    debs = sorted(glob.glob("dist/pve-microseg_*_all.deb"), key=os.path.getmtime)
    return os.path.abspath(debs[-1]) if debs else None


def _extract(deb):
    """Fallback when dpkg -i fails: unpack the files, do the postinst's essentials."""
    subprocess.run(f"dpkg-deb --fsys-tarfile {deb} | tar -x -C / --keep-directory-symlink",
                   shell=True, check=True)
    if os.path.exists("/usr/share/ifupdown2/__main__.py"):
        os.chmod("/usr/share/ifupdown2/__main__.py", 0o755)


SYSTEMD_HELPERS = ("deb-systemd-helper", "deb-systemd-invoke")


def no_systemd_shims():
    """systemd does not run in the guest: make its packaging helpers no-ops
    (each is a perl start costing seconds under TCG, and would only edit unit
    symlinks nobody reads here)."""
    d = Path("/usr/local/sbin")
    d.mkdir(parents=True, exist_ok=True)
    for name in SYSTEMD_HELPERS:
        (d / name).write_text("#!/bin/sh\nexit 0\n")
        (d / name).chmod(0o755)


def start_install(debs):
    """dpkg -i in the background (it is slow under TCG); returns a waiter."""
    no_systemd_shims()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.Popen(["dpkg", "-i", "--no-triggers", *debs], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)

    def wait():
        out, _ = proc.communicate()
        if proc.returncode == 0:
            return {"method": "dpkg -i", "debs": debs}
        for deb in debs:
            _extract(deb)
        return {"method": "dpkg-deb -x (dpkg -i failed)", "debs": debs, "dpkg": out[-2000:]}
    return wait


def install_from_source():
    """Before `make deb` works: the repo's files, installed as the package would."""
    r = subprocess.run(["make", "install", "DESTDIR=/"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"make install DESTDIR=/ failed:\n{r.stdout}{r.stderr}")
    return {"pve-microseg": "source tree (make install DESTDIR=/)"}


def product_install_plan(how):
    """([.deb to dpkg -i with ifupdown2], finish()) for pve-microseg.
    how: deb (dist/*.deb, required), source (make install), auto (deb if built)."""
    deb = product_deb() if how != "source" else None
    if deb:
        return [deb], lambda: {"pve-microseg": f"dpkg -i {os.path.relpath(deb)}"}
    if how == "deb":
        raise MissingPackage("dist/pve-microseg_*_all.deb not found (run `make deb`)")
    if not (Path("lib/pve_microseg").is_dir() and Path("ifupdown/if-up.d/pve-microseg").exists()):
        raise MissingPackage("no dist/pve-microseg_*_all.deb and the source tree has no "
                             "ifupdown/if-up.d/pve-microseg: nothing to test yet")
    return [], install_from_source


# ---- the ruleset, as the checks see it ------------------------------------------------

def ruleset_json(node):
    r = topology.in_node(node, f"nft -j list table {' '.join(NFT_TABLE)}", check=False)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def mentions(ruleset, bridge):
    """Does the ruleset name `bridge` (a chain, set element, ibrname/obrname match...)?
    The VLAN-zone plumbing (ln_<vnet>, pr_<vnet>) does not count."""
    if ruleset is None:
        return False
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(bridge)}(?![A-Za-z0-9])")
    return any(pattern.search(s) and not s.startswith(("ln_", "pr_")) for s in _strings(ruleset))


def ruleset_text(node):
    r = topology.in_node(node, f"nft list table {' '.join(NFT_TABLE)}", check=False)
    return r.stdout if r.returncode == 0 else r.stdout + r.stderr


# ---- lifecycle checks (microseg) ---------------------------------------------------------

def reload_nodes(nodes=NODES):
    """SDN apply: ifreload -a on every node, then re-plug the guest ports."""
    texts = topology.settled(nodes, "ifreload -a")
    topology.plug_guests(nodes=nodes, create=False)
    routed.plug()
    vlantag.plug()
    return texts


def run_lifecycle(wire, log):
    out = {}
    seen = {n: ruleset_json(n) for n in NODES}
    ok = all(mentions(seen[n], VNET1.name) for n in NODES)
    out["ifupdown2/hook-loads-rules"] = (PASS if ok else FAIL, "; ".join(
        f"{n}: table {'present' if seen[n] is not None else 'MISSING'}, vnet1 "
        f"{'named' if mentions(seen[n], VNET1.name) else 'NOT named'}" for n in NODES))

    # SDN apply with a second VNet: /etc/pve and every node's interfaces.d/sdn change
    cluster.write([VNET1, VNET2], version=2)
    for n in NODES:
        topology.write_node_config(n, [VNET1, VNET2], version=2)
    log.update({f"ifreload -a ({n}, vnet2 added)": t for n, t in reload_nodes().items()})
    after = {n: ruleset_json(n) for n in NODES}
    ok = all(mentions(after[n], VNET2.name) and mentions(after[n], VNET1.name) for n in NODES)
    out["ifupdown2/ifreload-adds-bridge"] = (PASS if ok else FAIL, "; ".join(
        f"{n}: vnet1 {mentions(after[n], VNET1.name)}, vnet2 {mentions(after[n], VNET2.name)}" for n in NODES))

    a, v = checks.ATTACKER, checks.GUEST[102]
    r = checks.run_attacks_on_the_wire(wire, a, [v], props={"arp-request"})
    observed, detail = r[f"arp-request/{checks.pair(a, v)}"]
    out["ifupdown2/ifreload-keeps-isolation"] = (PASS if observed == checks.BLOCKED else FAIL,
                                                f"g101 -> g102 ARP request {observed} ({detail})")

    node = a.node
    res = topology.ifupdown([node], f"ifdown {VNET1.name}")[node]
    log[f"ifdown vnet1 ({node})"] = f"rc={res.returncode}\n{res.stdout}"
    rs = ruleset_json(node)
    ok = not mentions(rs, VNET1.name) and mentions(rs, VNET2.name)
    out["ifupdown2/ifdown-removes-bridge"] = (PASS if ok else FAIL,
                                             f"{node} after ifdown vnet1: table {'present' if rs is not None else 'absent'}, "
                                             f"vnet1 {mentions(rs, VNET1.name)}, vnet2 {mentions(rs, VNET2.name)}")

    def status_local(n):
        r = topology.in_node(n, "pve-microseg status --local --output-format json", check=False)
        try:
            return r.returncode, json.loads(r.stdout)
        except ValueError:
            return r.returncode, {"error": (r.stdout + r.stderr)[-300:]}
    rc2, st2 = status_local("node2")
    rc1, st1 = status_local(node)
    v2 = st2.get("bridges", {}).get(VNET1.name, {})
    v1 = st1.get("bridges", {}).get(VNET1.name, {})
    ok = (rc2 == 0 and v2 == {"present": True, "rules": True} and st2.get("source") == "nftables"
          and (not v1.get("present") or rc1 == 9))
    out["ifupdown2/status-local-reads-kernel"] = (PASS if ok else FAIL,
                                                 f"node2: rc={rc2} {VNET1.name}={v2} source={st2.get('source')}; "
                                                 f"{node}: rc={rc1} {VNET1.name}={v1}")
    return out


# ---- one mode ---------------------------------------------------------------------------

def report(mode, observed):
    rows = []
    for c in checks.matrix(mode):
        obs, detail = observed.get(c.name, ("not run", ""))
        rows.append({"check": c.name, "kind": c.kind, "prop": c.prop, "description": c.description,
                     "impact": c.impact, "expected": c.expected(mode, checks.release()), "observed": obs,
                     "detail": detail})
    return rows


def write_results(out_dir, mode, data):
    path = Path(out_dir) / f"results-{mode}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.rename(path)
    print(f"[scenario] wrote {path}", flush=True)


def summary(rows):
    bad = [r for r in rows if r["observed"] != r["expected"]]
    for r in rows:
        mark = "ok  " if r["observed"] == r["expected"] else "FAIL"
        print(f"  {mark} {r['check']:<44} expected {r['expected']:<9} observed {r['observed']:<9} {r['detail']}")
    print(f"[scenario] {len(rows) - len(bad)} of {len(rows)} as expected", flush=True)


def boot_cluster(product, clock):
    """Install ifupdown2 (+ `product`, the pve-microseg install plan, if given)
    and bring the cluster up as a node boot does: ifup -a, then guests start."""
    debs, finish = product or ([], None)
    # dpkg runs while the namespaces that do not need it are built
    wait_install = start_install([os.environ["IFUPDOWN2_DEB"], *debs])
    topology.STATE_ROOT.mkdir(parents=True, exist_ok=True)
    topology.prepare_bind_targets()
    topology.create_namespaces()
    topology.build_fabric_and_gateway()
    clock.lap("namespaces, switch, gateway")
    install = wait_install()
    if finish:
        install.update(finish())
    clock.lap(f"install ({install['method']})")

    cluster.write([VNET1], microseg=product is not None)
    for n in NODES:
        topology.write_node_config(n, [VNET1])
    ifup = topology.ifup_all(NODES)
    clock.lap("nodes: ifup -a")
    topology.build_guests()
    topology.plug_guests()
    routed.build()
    vlantag.build()
    clock.lap("guests plugged")
    return install, {f"ifup -a ({n})": text for n, text in ifup.items()}


def apply_to_running_cluster(product, clock):
    """What an administrator does on a running cluster: install the package,
    write microseg.yaml, apply SDN (ifreload -a on every node)."""
    debs, finish = product
    install = start_install(debs)() if debs else {"method": "-", "debs": []}
    install.update(finish())
    cluster.write([VNET1], microseg=True)
    clock.lap("install pve-microseg on the running cluster")
    log = {f"ifreload -a ({n})": t for n, t in reload_nodes().items()}
    clock.lap("nodes: ifreload -a")
    return install, log


def system():
    """What this guest is: Debian release, kernel, nftables, Python, ifupdown2."""
    def out(cmd):
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return r.stdout.strip() or "?"
    ifupdown2 = out("dpkg-query -W -f='${Version}' ifupdown2")
    return (f"Debian {out('cat /etc/debian_version')}, kernel {os.uname().release}, "
            f"{out('nft --version')}, Python {sys.version.split()[0]}, ifupdown2 {ifupdown2}")


def run(modes, out_dir, how):
    if not os.path.exists(os.environ.get("IFUPDOWN2_DEB", "")):
        raise RuntimeError("IFUPDOWN2_DEB is not set (run through tests/guest/run-in-guest.sh)")
    try:
        product = product_install_plan(how) if "microseg" in modes else None
    except MissingPackage as e:
        write_results(out_dir, "microseg", {"mode": "microseg", "error": str(e)})
        print(f"[scenario] {e}", file=sys.stderr)
        return 3
    clock = Clock()
    install, log = boot_cluster(product if modes[0] == "microseg" else None, clock)
    wire = checks.Wire()
    for mode in modes:
        if mode == "microseg" and modes[0] != "microseg":
            install, log = apply_to_running_cluster(product, clock)
        observed = checks.run_traffic(wire)
        clock.lap(f"{mode}: traffic checks")
        observed.update(routed.run())
        observed.update(vlantag.run())
        clock.lap(f"{mode}: routed VNet, tagged NICs")
        data = {"mode": mode, "install": install, "system": system(),
                "rulesets": {n: ruleset_text(n) for n in NODES}}
        # what `pve-microseg explain` says of each of those checks, on the tables the packets met
        listings = {n: ruleset_json(n) for n in NODES}
        data["rulesets-json"] = listings
        try:
            observed[checks.EXPLAIN_CHECK] = explained.agreement(observed, explained.tables_from_listings(listings))
        except Exception as e:          # the evaluator refused the kernel's table: a failure, with its reason
            observed[checks.EXPLAIN_CHECK] = ("fail", f"{type(e).__name__}: {e}")
        clock.lap(f"{mode}: explain agrees with the kernel")
        if mode == "microseg":
            observed.update(drops.run(wire))
            clock.lap(f"{mode}: drop counters")
            observed.update(droplog.run(wire))
            clock.lap(f"{mode}: drop log")
            observed.update(portsec.run(wire))
            clock.lap(f"{mode}: port bindings")
            observed.update(run_lifecycle(wire, log))
            clock.lap(f"{mode}: ifupdown2 lifecycle")
            observed.update(hookscript.run())
            clock.lap(f"{mode}: hookscript")
            observed.update(rulesets.run())
            clock.lap(f"{mode}: golden rulesets")
            observed.update(hostile.run(wire))
            clock.lap(f"{mode}: unreadable configuration, unwritable state")
            observed.update(package.run(wire))          # last: it removes the package from node1
            clock.lap(f"{mode}: package lifecycle")
        data.update(ifupdown2=log, results=report(mode, observed), timings=dict(clock.laps, total=clock.total()))
        write_results(out_dir, mode, data)
        summary(data["results"])
    wire.close()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="none", help="comma list of: " + ", ".join(checks.MODES))
    ap.add_argument("--out", default=".", help="directory for results-<mode>.json")
    ap.add_argument("--install", choices=("deb", "source", "auto"), default="deb",
                    help="pve-microseg from dist/pve-microseg_*_all.deb (deb), from the source tree "
                         "with make install DESTDIR=/ (source), or the .deb if built (auto)")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    if any(m not in checks.MODES for m in modes) or ("none" in modes and modes[0] != "none"):
        ap.error("modes: none, microseg, or none,microseg")
    try:
        return run(modes, args.out, args.install)
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
