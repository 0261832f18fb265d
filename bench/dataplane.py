#!/usr/bin/python3
"""Benchmark 1: frames per second through a node's bridges, per ruleset design.

Runs as root INSIDE the QEMU guest (Debian's stock kernel; this machine's own
kernel lacks nft_meta_bridge) -- bench/run.py boots it.  Writes one JSON file.

Layout: one network namespace per (design, N), each a copy of the same node:

    vnet0 (managed)   tap100i0 (guest, pktgen injects here; static FDB entry)
                      tap101i0 (another guest, static FDB entry for its MAC)
                      uplink0  (towards the gateway, static FDB entry for GW_MAC;
                                pktgen injects the gateway's frames here)
    vmbr9 (unmanaged) tap900i0 (pktgen injects here), tap901i0
    vnet1..vnet<N-1>  further managed bridges (no traffic; --no-extra-bridges)

Port security (the product since 0.3.0): the designs in designs.PORT_DESIGNS
bind P guest ports (--ports, one namespace per P): tap100i0 to the MAC and
source IPv4 address of the frames pktgen sends from it, tap101i0, and
filler ports with no device (designs.port_bindings).

Every port is a dummy device: pktgen (xmit_mode netif_receive) hands each
frame to the stack as if the port had received it, so the frame enters the
bridge; a dummy egress port counts the frame (tx_packets) and frees it.  The
ruleset of a namespace is loaded once (timed); the traffic rounds then switch
namespaces, which interleaves the designs without reloading anything.

Traffic cases (IPv4/UDP, 64-byte frames, one flow):
  a  guest -> gateway on vnet0   (tap100i0 -> GW_MAC on uplink0: allowed path)
  b  unmanaged bridge vmbr9      (tap900i0 -> tap901i0)
  c  guest -> guest on vnet0     (tap100i0 -> tap101i0: microseg drops it,
                                  the article forwards it: it only drops ARP)
  d  gateway -> guest on vnet0   (uplink0 -> tap100i0: the allowed return path)
pps = frames pktgen pushed through the stack per second; netif_receive_skb
runs the whole bridge path (hooks, rules, forwarding to the egress dummy)
synchronously, so this is the rate the node sustains on that path.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import designs  # noqa: E402

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_ROOT_NS = os.open("/proc/self/ns/net", os.O_RDONLY)

GUEST_MAC = "02:00:00:00:64:00"     # the sending guest (tap100i0)
GUEST2_MAC = "02:00:00:00:65:00"    # the other guest (tap101i0)
VMBR9_SRC, VMBR9_DST = "02:00:00:09:00:01", "02:00:00:09:00:02"

CASES = {
    "a": dict(dev="tap100i0", src_mac=GUEST_MAC, dst_mac=designs.GW_MAC,
              src="10.100.0.100", dst=designs.GW_IPV4, sink="uplink0",
              what="guest -> gateway (vnet0, allowed)"),
    "b": dict(dev="tap900i0", src_mac=VMBR9_SRC, dst_mac=VMBR9_DST,
              src="192.168.9.100", dst="192.168.9.101", sink="tap901i0",
              what="unmanaged bridge vmbr9"),
    "c": dict(dev="tap100i0", src_mac=GUEST_MAC, dst_mac=GUEST2_MAC,
              src="10.100.0.100", dst="10.100.0.101", sink="tap101i0",
              what="guest -> guest (vnet0; microseg drops)"),
    "d": dict(dev="uplink0", src_mac=designs.GW_MAC, dst_mac=GUEST_MAC,
              src=designs.GW_IPV4, dst="10.100.0.100", sink="tap100i0",
              what="gateway -> guest (vnet0, allowed return path)"),
}
INJECT_PORTS = ("tap100i0", "tap900i0", "uplink0")
DESIGNS = ("none", "article", "microseg", "microseg-0.2.0", "microseg-noanon", "microseg-proto")


def log(*a):
    print(f"[dataplane {time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def sh(*cmd, input=None):
    r = subprocess.run(cmd, input=input, text=True, capture_output=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


# ------------------------------------------------------------- namespaces

def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


class Netns:
    """A named netns; `with ns:` moves the calling thread into it."""

    created = []

    def __init__(self, name):
        self.name = name
        if os.path.exists(f"/run/netns/{name}"):        # left by an earlier run in this guest
            sh("ip", "netns", "del", name)
        sh("ip", "netns", "add", name)
        Netns.created.append(name)
        self.fd = os.open(f"/run/netns/{name}", os.O_RDONLY)

    def __enter__(self):
        _setns(self.fd)
        return self

    def __exit__(self, *exc):
        _setns(_ROOT_NS)


def build_node(ns, extra_bridges, inject="rx"):
    """The node's bridges and ports (see the module docstring)."""
    sh("ip", "netns", "exec", ns.name, "sysctl", "-q", "-w",
       "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
    br = "type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
    lines = ["link set lo up", f"link add vnet0 {br}", f"link add vmbr9 {br}"]
    for port, bridge in (("tap100i0", "vnet0"), ("tap101i0", "vnet0"), ("uplink0", "vnet0"),
                         ("tap900i0", "vmbr9"), ("tap901i0", "vmbr9")):
        if inject == "veth" and port in INJECT_PORTS:
            # pktgen transmits on the peer; the frame crosses the veth pair
            # and is received by the bridge port, like a frame from a guest
            lines += [f"link add {port} type veth peer name {port}p", f"link set {port}p up"]
        else:
            lines.append(f"link add {port} type dummy")
        lines += [f"link set {port} master {bridge}", f"link set {port} up"]
    lines += ["link set vnet0 up", "link set vmbr9 up"]
    lines += [f"link add vnet{i} {br}" for i in range(1, extra_bridges)]
    sh("ip", "-n", ns.name, "-batch", "-", input="\n".join(lines) + "\n")
    fdb = [f"fdb add {designs.GW_MAC} dev uplink0 master static",
           f"fdb add {GUEST_MAC} dev tap100i0 master static",
           f"fdb add {GUEST2_MAC} dev tap101i0 master static",
           f"fdb add {VMBR9_DST} dev tap901i0 master static"]
    sh("bridge", "-n", ns.name, "-batch", "-", input="\n".join(fdb) + "\n")


# ---------------------------------------------------------------- loading

def nft_ctx():
    import nftables
    ctx = nftables.Nftables()
    ctx.set_json_output(True)
    return ctx


def load(ns, design, n, ports=None):
    """Load a design into an empty namespace; returns a load record."""
    rec = {"design": design, "n": n, "ports": ports, "ok": True, "error": None}
    with ns:
        t0 = time.perf_counter()
        if design in designs.TEXT_DESIGNS:
            text = designs.TEXT_DESIGNS[design](n)
            rec["build_s"] = time.perf_counter() - t0
            rec["anon_sets"] = text.count("{ ") - text.count("{ type")
            t1 = time.perf_counter()
            rc, _, err = nft_ctx().cmd(text)
            rec["load_s"] = time.perf_counter() - t1
            if rc:
                rec.update(ok=False, error=err.strip().splitlines()[0] if err.strip() else f"rc={rc}")
        elif design in designs.JSON_DESIGNS:
            tr = designs.JSON_DESIGNS[design](n, ports)
            rec["build_s"] = time.perf_counter() - t0
            rec["commands"] = len(tr["nftables"])
            rec["anon_sets"] = designs.count_anonymous_sets(tr)
            from pve_microseg.model.errors import NftablesError
            from pve_microseg.edges.nft import Nft
            t1 = time.perf_counter()
            try:
                Nft().run(tr)       # what `pve-microseg apply` does: one transaction
            except NftablesError as e:
                rec.update(ok=False, error=str(e).splitlines()[1] if "\n" in str(e) else str(e))
            rec["load_s"] = time.perf_counter() - t1
        elif design == "none":
            rec.update(build_s=0.0, load_s=0.0)
        else:
            raise ValueError(f"unknown design {design}")
    return rec


def flush(ns):
    with ns:
        t0 = time.perf_counter()
        rc, _, err = nft_ctx().cmd("flush ruleset")
        if rc:
            raise RuntimeError(err)
        return time.perf_counter() - t0


def article_limit(ns, max_bridges):
    """Add the article's chains one transaction per bridge (as its if-up.d
    scripts do) until the kernel refuses one."""
    rec = {"loaded": 0, "error": None}
    t0 = time.perf_counter()
    with ns:
        ctx = nft_ctx()
        for i in range(max_bridges):
            rc, _, err = ctx.cmd(designs.article_one(f"vnet{i}"))
            if rc:
                rec["error"] = err.strip().splitlines()[0]
                rec["failed_at"] = i + 1
                break
            rec["loaded"] = i + 1
    rec["seconds"] = time.perf_counter() - t0
    flush(ns)
    return rec


# ----------------------------------------------------------------- pktgen

PG = "/proc/thread-self/net/pktgen"


def _pgw(path, text):
    with open(path, "w") as f:
        f.write(text + "\n")


def _netdev_tx():
    out = {}
    with open("/proc/thread-self/net/dev") as f:
        for line in f.readlines()[2:]:
            name, data = line.split(":", 1)
            out[name.strip()] = int(data.split()[9])       # tx packets
    return out


_SOFAR = re.compile(r"pkts-sofar: (\d+)")


def _wait_running(dev, starter, timeout=5.0):
    """Wait until pktgen sends on dev.  The kernel's pktgen thread picks up
    `start` on its next wake-up (it polls every 100 ms, and `start` itself
    waits 125 ms): a `stop` written before then is consumed by a thread that
    runs nothing, and the run that follows never ends (count 0)."""
    t_end = time.monotonic() + timeout
    while starter.is_alive() and time.monotonic() < t_end:
        with open(dev) as f:
            m = _SOFAR.search(f.read())
        if m and int(m.group(1)) > 0:
            return
        time.sleep(0.01)


_RESULT = re.compile(r"Result: OK: (\d+)\(c(\d+)\+d(\d+)\) usec, (\d+) \((\d+)byte")


def pktgen(ns, case, duration, inject="rx"):
    c = CASES[case]
    port = c["dev"] if inject == "rx" else c["dev"] + "p"
    mode = "netif_receive" if inject == "rx" else "start_xmit"
    with ns:
        _pgw(f"{PG}/kpktgend_0", "rem_device_all")
        _pgw(f"{PG}/kpktgend_0", f"add_device {port}")
        dev = f"{PG}/{port}"
        for cmd in (f"xmit_mode {mode}", "count 0", "delay 0", "pkt_size 64",
                    "clone_skb 0", "burst 1", f"dst_mac {c['dst_mac']}", f"src_mac {c['src_mac']}",
                    f"dst_min {c['dst']}", f"dst_max {c['dst']}",
                    f"src_min {c['src']}", f"src_max {c['src']}",
                    "udp_src_min 9", "udp_src_max 9", "udp_dst_min 9", "udp_dst_max 9"):
            _pgw(dev, cmd)
        before = _netdev_tx()[c["sink"]]
        t = threading.Thread(target=_pgw, args=(f"{PG}/pgctrl", "start"))
        t.start()
        _wait_running(dev, t)
        time.sleep(duration)
        while True:
            _pgw(f"{PG}/pgctrl", "stop")
            t.join(timeout=0.5)
            if not t.is_alive():
                break
            log(f"pktgen on {port} in {ns.name} still running after stop: stopping again")
        egress = _netdev_tx()[c["sink"]] - before
        with open(dev) as f:
            text = f.read()
    m = _RESULT.search(text)
    if not m:
        raise RuntimeError(f"pktgen gave no result in {ns.name}:\n{text}")
    usec, pkts = int(m.group(1)), int(m.group(4))
    return {"pps": pkts / (usec / 1e6), "injected": pkts, "egress": egress, "usec": usec}


# ------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", default="1,100,1000,4094", help="bridge counts N")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--duration", type=float, default=1.5, help="seconds per pktgen run")
    ap.add_argument("--designs", default=",".join(DESIGNS))
    ap.add_argument("--ports", default=str(designs.DEFAULT_PORTS),
                    help="bound guest ports P (comma-separated): the designs with port security "
                         "(designs.PORT_DESIGNS) get one namespace per (N, P); the others ignore it")
    ap.add_argument("--cases", default=",".join(CASES), help="traffic cases to run (a,b,c,d)")
    ap.add_argument("--microseg-max-n", type=int, default=0,
                    help="skip loading the product's ruleset above this N (0: no limit; before "
                         "commit 5472e64 its load time was quadratic in N)")
    ap.add_argument("--article-max-n", type=int, default=0,
                    help="do not try to load the article's layout above this N (0: try; it fails "
                         "above 1,024 bridges, and the kernel takes minutes to abort it under TCG)")
    ap.add_argument("--reload-max-s", type=float, default=8.0,
                    help="reload (flush + timed load) a design before each round when its "
                         "last load took less than this")
    ap.add_argument("--article-limit-max", type=int, default=1100)
    ap.add_argument("--no-extra-bridges", action="store_true")
    ap.add_argument("--inject", choices=("rx", "veth"), default="rx",
                    help="rx: pktgen netif_receive on the bridge port (a dummy); veth: pktgen "
                         "transmits on the peer of a veth bridge port (adds the veth path)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ns_list = [int(x) for x in args.ns.split(",")]
    wanted = args.designs.split(",")
    port_list = [int(x) for x in args.ports.split(",")]
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown cases: {', '.join(unknown)}")

    def variants(d):        # the P values a design is measured at (None: it binds no port)
        return port_list if d in designs.PORT_DESIGNS else [None]

    sh("modprobe", "pktgen")
    for m in ("dummy", "bridge", "nf_tables", "nft_meta_bridge"):
        sh("modprobe", m)
    res = {"meta": {
        "kernel": platform.release(), "cpus": os.cpu_count(), "ns": ns_list,
        "rounds": args.rounds, "duration_s": args.duration, "designs": wanted,
        "ports": port_list, "port_designs": sorted(set(wanted) & designs.PORT_DESIGNS),
        "microseg_max_n": args.microseg_max_n,
        "inject": args.inject,
        "pktgen": ("xmit_mode netif_receive on a dummy bridge port" if args.inject == "rx" else
                   "xmit_mode start_xmit on the peer of a veth bridge port")
                  + ", pkt_size 64, burst 1, clone_skb 0, one flow, kpktgend_0 (CPU 0)",
        "cases": {k: v["what"] for k, v in CASES.items() if k in cases},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": designs.source_revision()},
        "load": [], "skipped": [], "samples": [], "article_limit": None}
    t_start = time.monotonic()

    # one namespace per (design, N, P); "none" is shared by every N
    spaces = {}
    max_n = max(ns_list)
    log("building namespaces")
    spaces[("none", 0, None)] = Netns("none")
    build_node(spaces[("none", 0, None)], 0 if args.no_extra_bridges else max_n, args.inject)
    for n in ns_list:
        for d in wanted:
            if d == "none":
                continue
            for p in variants(d):
                if d == "article" and args.article_max_n and n > args.article_max_n:
                    res["skipped"].append({"design": d, "n": n, "ports": p,
                                           "why": f"N > --article-max-n {args.article_max_n} (more than "
                                           "1,024 base chains on one hook: the kernel refuses it)"})
                    continue
                if d == "microseg" and args.microseg_max_n and n > args.microseg_max_n:
                    res["skipped"].append({"design": d, "n": n, "ports": p,
                                           "why": f"N > --microseg-max-n {args.microseg_max_n}"})
                    continue
                ns = spaces[(d, n, p)] = Netns(f"{d}-{n}" + ("" if p is None else f"-p{p}"))
                build_node(ns, 0 if args.no_extra_bridges else n, args.inject)
    res["meta"]["setup_s"] = time.monotonic() - t_start

    if "article" in wanted and args.article_limit_max > 0:
        log(f"article: per-bridge transactions until the kernel refuses one (max {args.article_limit_max})")
        res["article_limit"] = article_limit(Netns("article-limit"), args.article_limit_max)
        log(f"  -> {res['article_limit']}")

    # the first transactions of a boot autoload nf_tables modules: not a load time
    warm = Netns("warm-up")
    for d in wanted:
        if d != "none" and not d.startswith("probe-"):
            load(warm, d, 1, variants(d)[0])
            flush(warm)

    log("initial loads")
    last_load = {}
    for (d, n, p), ns in sorted(spaces.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2] or 0)):
        if d == "none":
            continue
        rec = load(ns, d, n, p)
        rec["round"] = 0
        res["load"].append(rec)
        last_load[(d, n, p)] = rec
        log(f"  {d} N={n}" + ("" if p is None else f" P={p}")
            + f": {'ok' if rec['ok'] else 'FAILED'} in {rec['load_s']:.2f} s"
            + ("" if rec["ok"] else f": {rec['error']}"))
        if not rec["ok"]:
            flush(ns)

    def live(d, n, p):
        if d == "none":
            return spaces[("none", 0, None)]
        rec = last_load.get((d, n, p))
        return spaces[(d, n, p)] if rec and rec["ok"] else None

    for r in range(1, args.rounds + 1):
        log(f"round {r}/{args.rounds} ({time.monotonic() - t_start:.0f} s elapsed)")
        order = wanted[(r - 1) % len(wanted):] + wanted[:(r - 1) % len(wanted)]
        for n in ns_list:
            for d in order:         # reload the cheap ones (timed), keep the others
                for p in variants(d):
                    if d == "none" or live(d, n, p) is None or \
                            last_load[(d, n, p)]["load_s"] >= args.reload_max_s:
                        continue
                    if r > 1:
                        flush(spaces[(d, n, p)])
                        rec = load(spaces[(d, n, p)], d, n, p)
                        rec["round"] = r
                        res["load"].append(rec)
                        last_load[(d, n, p)] = rec
                        if not rec["ok"]:
                            raise RuntimeError(f"reload of {d} N={n} P={p} failed: {rec['error']}")
            for case in cases:      # the designs side by side, seconds apart
                for d in order:
                    for p in variants(d):
                        ns = live(d, n, p)
                        if ns is None:
                            continue
                        s = pktgen(ns, case, args.duration, args.inject)
                        s.update(round=r, n=n, ports=p, design=d, case=case)
                        res["samples"].append(s)
        with open(args.out, "w") as f:       # partial results survive a timeout
            json.dump(res, f, indent=1)
    res["meta"]["elapsed_s"] = time.monotonic() - t_start
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    for name in Netns.created:      # frees their rulesets and devices for what runs next
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    log(f"done in {res['meta']['elapsed_s']:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
