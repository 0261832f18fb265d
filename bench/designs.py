"""The rulesets the benchmarks compare (pure: text / libnftables JSON, no kernel).

* ``article``  -- the seed article's layout, rebuilt from its description: one
  base chain per bridge on the bridge *forward* hook, each rule guarded by
  ``meta ibrname X meta obrname X``; ARP between guests of bridge X is dropped
  except to/from the gateway's IPv4 address.  Every bridged frame on the node
  walks every one of these base chains.
* ``microseg`` -- the product: ``pve_microseg.policy.ruleset.full(bridges,
  bindings)``, with port security (0.3.0): the guest port pktgen sends from
  is bound to its frames' MAC and addresses, plus filler guest ports so that
  ``ports`` ports are bound in all (``port_bindings``).
* ``microseg-ps-off`` -- the product with ``port-security: off`` on every
  bridge: isolates what port security costs from the version's other rules.
* ``microseg-0.2.0`` -- the product's ruleset as released in 0.2.0 (commit
  ``LEGACY_COMMIT``, before port security), imported from that commit under
  another package name (``legacy_package``) so both run in the same guest.
* ``microseg-noanon`` -- a *prototype* (bench only) of the same rules with no
  per-bridge anonymous sets: the guest-port name patterns live in one named
  set shared by all bridges (``@guest-ports``) and the per-bridge address
  sets (gateway IPv6 addresses, ND targets) are expanded into one rule per
  address.  Same verdicts and the same dispatch (one verdict-map lookup per
  hook); it exists to test the hypothesis that anonymous sets make the load
  time quadratic in the number of bridges (see README.md).
"""

import copy
import dataclasses
import importlib
import importlib.util
import ipaddress
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from pve_microseg.parse import addresses  # noqa: E402
from pve_microseg.policy import ruleset  # noqa: E402
from pve_microseg.model.binding import PortBinding  # noqa: E402
from pve_microseg.model.bridge import Gateway, ManagedBridge  # noqa: E402

GW_MAC = "02:00:00:00:01:01"
GW_IPV4 = "10.100.0.1"
GW_IPV6 = "fd00:100::1"

# the guest pktgen sends from (dataplane.py: tap100i0) and the other guest of vnet0
GUEST_VMID, GUEST2_VMID = 100, 101
DEFAULT_PORTS = 10      # bound guest ports in all (dataplane.py --ports)
FILLER_VMID = 1000      # filler ports: guests 1000, 1001, ... (no device, no traffic)

LEGACY_COMMIT = "fbd8b22"       # version 0.2.0: the ruleset before port security

ARTICLE_TABLE = "l2_microseg"   # the article's scripts keep their chains in their own table


def source_revision():
    """Which product code a measurement ran: the checkout's commit, whether
    lib/ differs from it, and a digest of the ruleset builder."""
    import hashlib
    import subprocess
    repo = os.path.dirname(HERE)

    def git(*a):
        r = subprocess.run(["git", "-C", repo, *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    with open(ruleset.__file__, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()[:12]
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "lib_modified": bool(git("status", "--porcelain", "--", "lib", "ifupdown")),
            "ruleset_py": os.path.relpath(ruleset.__file__, repo) if ruleset.__file__.startswith(repo)
            else ruleset.__file__,
            "ruleset_sha1": digest,
            "legacy": {"microseg-0.2.0": LEGACY_COMMIT}}


def bridge_names(n):
    return [f"vnet{i}" for i in range(n)]


def gateway():
    """What microseg.yaml `gateway-mac: GW_MAC, gateway-ip: [GW_IPV4, GW_IPV6]` resolves to
    (config.resolve adds the EUI-64 link-local address of each gateway MAC)."""
    return Gateway(macs=(GW_MAC,),
                   ipv4=(ipaddress.ip_address(GW_IPV4),),
                   ipv6=(ipaddress.ip_address(GW_IPV6), addresses.eui64_link_local(GW_MAC)))


def managed_bridges(n):
    """VNets with their subnets, as SDN gives them: the product then also
    drops a guest's packets routed back into the subnet (intra-vnet-routing)."""
    gw = gateway()
    subnets = (ipaddress.ip_network("10.100.0.0/24"), ipaddress.ip_network("fd00:100::/64"))
    return [ManagedBridge(name=name, gateway=gw, vnet=True, subnets=subnets) for name in bridge_names(n)]


# ------------------------------------------------------------------ article

def article_chain(bridge, gw_ip=GW_IPV4, table=ARTICLE_TABLE):
    """nft commands of one bridge, as the article's if-up.d script adds them."""
    c = f"L2_ISO_{bridge}"
    m = f'meta ibrname "{bridge}" meta obrname "{bridge}"'
    return [
        f"add chain bridge {table} {c} {{ type filter hook forward priority 0; policy accept; }}",
        f"add rule bridge {table} {c} {m} arp saddr ip {gw_ip} accept",
        f"add rule bridge {table} {c} {m} arp daddr ip {gw_ip} accept",
        f"add rule bridge {table} {c} {m} arp operation {{ request, reply }} drop",
    ]


def article(n, table=ARTICLE_TABLE):
    """The article's layout for n bridges, as ONE nft script (one transaction)."""
    lines = [f"add table bridge {table}"]
    for b in bridge_names(n):
        lines += article_chain(b, table=table)
    return "\n".join(lines) + "\n"


def article_one(bridge, table=ARTICLE_TABLE):
    """One bridge's chain as its own transaction (how the article deploys it)."""
    return "\n".join([f"add table bridge {table}"] + article_chain(bridge, table=table)) + "\n"


# ----------------------------------------------------------------- microseg

def guest_mac(vmid):
    """02:00:00:00:64:00 for guest 100 (dataplane.GUEST_MAC), one MAC per vmid."""
    return f"02:00:00:{vmid >> 8 & 0xff:02x}:{vmid & 0xff:02x}:00"


def guest_ipv4(vmid):
    """10.100.0.100 for guest 100 (what dataplane.py's frames carry)."""
    return f"10.100.{vmid >> 8}.{vmid & 0xff}"


def guest_ipv6(vmid):
    return f"fd00:100::{vmid:x}:1"


def _binding(vmid, kind="tap"):
    """What policy/bindings.py gives a guest NIC net0 on vnet0 with
    port-security mac+ip and one known address of each family (the
    product would add the NIC's EUI-64 link-local too; IPv4 frames never
    look it up)."""
    return PortBinding(port=f"{kind}{vmid}i0", vmid=vmid, nic="net0", bridge="vnet0", mode="mac+ip",
                       mac=guest_mac(vmid), ipv4=(guest_ipv4(vmid),), ipv6=(guest_ipv6(vmid),),
                       sources=("bench",))


def port_bindings(ports=DEFAULT_PORTS):
    """`ports` bound guest ports: tap100i0 (pktgen's guest: its frames' MAC
    and source IPv4), tap101i0 (the other guest of vnet0), then fillers
    tap1000i0, veth1001i0, tap1002i0, ... (VMs and containers alternate),
    each with its own MAC, IPv4 and IPv6 address.  The fillers' IPv4
    addresses lie outside vnet0's /24 (it cannot hold thousands), as if on
    other VNets: the bind sets are node-wide, keyed by port, not bridge."""
    ports = DEFAULT_PORTS if ports is None else ports
    out = [_binding(GUEST_VMID), _binding(GUEST2_VMID)][:max(ports, 1)]
    out += [_binding(FILLER_VMID + i, "veth" if i % 2 else "tap") for i in range(max(ports - 2, 0))]
    return out


def microseg(n, ports=DEFAULT_PORTS):
    return ruleset.full(managed_bridges(n), port_bindings(ports))


def microseg_ps_off(n):
    """The product with `port-security: off` on every bridge (no guest-bind
    jump; policy/bindings.py makes no binding for such bridges): the same
    version's ruleset without port security."""
    return ruleset.full([dataclasses.replace(b, port_security="off") for b in managed_bridges(n)])


# ------------------------------------------- microseg as released in 0.2.0

def legacy_package(commit=LEGACY_COMMIT):
    """The package lib/pve_microseg of `commit`, imported as
    pve_microseg_<commit> (its relative imports stay inside it); extracted
    with `git archive` into a cache directory under $TMPDIR on first use
    (run.py does that on the host before the guest boots)."""
    name = f"pve_microseg_{commit}"
    if name in sys.modules:
        return sys.modules[name]
    root = os.path.join(tempfile.gettempdir(), f"pve-microseg-bench-{commit}")
    pkg = os.path.join(root, "lib", "pve_microseg")
    if not os.path.exists(os.path.join(pkg, "__init__.py")):
        tmp = tempfile.mkdtemp(prefix=f"pve-microseg-bench-{commit}.")
        archive = subprocess.run(["git", "-C", os.path.dirname(HERE), "archive", commit, "lib/pve_microseg"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        try:
            os.rename(tmp, root)
        except OSError:         # extracted meanwhile by another process
            subprocess.run(["rm", "-rf", tmp])
    spec = importlib.util.spec_from_file_location(name, os.path.join(pkg, "__init__.py"),
                                                  submodule_search_locations=[pkg])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def legacy_ruleset(commit=LEGACY_COMMIT):
    """(ruleset module, model module) of the legacy package (0.2.0: flat layout)."""
    name = legacy_package(commit).__name__
    return importlib.import_module(f"{name}.ruleset"), importlib.import_module(f"{name}.model")


def microseg_020(n):
    """ruleset.full(bridges) of 0.2.0, with its own model classes."""
    rs, model = legacy_ruleset()
    out = []
    for b in managed_bridges(n):
        gw = model.Gateway(macs=b.gateway.macs, ipv4=b.gateway.ipv4, ipv6=b.gateway.ipv6)
        out.append(model.ManagedBridge(name=b.name, gateway=gw, vnet=b.vnet, subnets=b.subnets))
    return rs.full(out)


def without_drop_counters(tr):
    """The transaction `tr` with drops that stop where they are: each
    `goto drop-<class>` verdict is `drop`, and the drop-<class> chains
    (their creation, flush and rules) are gone."""
    drop_chains = {ruleset.drop_chain(cls) for cls in ruleset.DROP_CLASSES}

    def chain_of(cmd):
        body = next(iter(cmd.values()))
        for kind in ("chain", "rule"):
            obj = body.get(kind) if isinstance(body, dict) else None
            if isinstance(obj, dict):
                return obj.get("name") if kind == "chain" else obj.get("chain")
        return None

    out = []
    for cmd in copy.deepcopy(tr["nftables"]):
        if chain_of(cmd) in drop_chains:
            continue
        for target in drop_chains:
            _walk_replace(cmd, {"goto": {"target": target}}, {"drop": None})
        out.append(cmd)
    return {"nftables": out}


def microseg_nocount(n, ports=DEFAULT_PORTS):
    return without_drop_counters(microseg(n, ports))


# ------------------------------------------------------ microseg prototype

GUEST_PORTS_SET = "guest-ports"


def _walk_replace(obj, old, new):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if v == old:
                obj[k] = new
            else:
                _walk_replace(v, old, new)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if v == old:
                obj[i] = new
            else:
                _walk_replace(v, old, new)


def without_anonymous_sets(transaction):
    """Rewrite a ruleset.py transaction so that it creates no anonymous set.

    Only for '==' matches against a set (a '!=' against several values can't
    be split into rules; the benchmark's gateway has one MAC, so there is none).
    """
    tr = copy.deepcopy(transaction)
    _walk_replace(tr, {"set": list(ruleset.GUEST_PORTS)}, f"@{GUEST_PORTS_SET}")
    out = []
    for cmd in tr["nftables"]:
        if "map" in cmd.get("add", {}) and cmd["add"]["map"]["name"] == ruleset.PREROUTING_MAP:
            out.append({"add": {"set": {"family": ruleset.FAMILY, "table": ruleset.TABLE,
                                        "name": GUEST_PORTS_SET, "type": "ifname",
                                        "flags": ["interval"], "elem": list(ruleset.GUEST_PORTS)}}})
        rule = cmd.get("add", {}).get("rule")
        sets = [i for i, e in enumerate(rule["expr"])
                if isinstance(e.get("match", {}).get("right"), dict) and "set" in e["match"]["right"]
                ] if rule else []
        if not sets:
            out.append(cmd)
            continue
        if len(sets) != 1 or rule["expr"][sets[0]]["match"]["op"] != "==":
            raise ValueError(f"cannot expand {rule}")
        i = sets[0]
        for value in rule["expr"][i]["match"]["right"]["set"]:
            r = copy.deepcopy(rule)
            r["expr"][i]["match"]["right"] = value
            out.append({"add": {"rule": r}})
    return {"nftables": out}


def microseg_noanon(n, ports=DEFAULT_PORTS):
    return without_anonymous_sets(microseg(n, ports))


def count_anonymous_sets(transaction):
    """How many anonymous sets a transaction makes the kernel create."""
    n = 0

    def walk(o):
        nonlocal n
        if isinstance(o, dict):
            if set(o) == {"set"} and isinstance(o["set"], list):
                n += 1
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(transaction)
    return n


# ------------------------------------------- microseg prototype: fast path
#
# The same verdicts as ruleset.bridge_rules(), ordered so that a frame is
# classified once per hook (guest port or not, then ethertype) and then sees
# only the rules of its kind, and with no anonymous set per bridge.  Loading
# `meta iifname`/`oifname` costs ~250 guest instructions (a 16-byte copy) and
# a lookup in the 3-pattern wildcard set ~590: the product's forward chain
# does up to five such lookups per frame, this one two.

PROTO_PREFIX_ORDER = ("tap*", "veth*", "fwpr*")     # VM ports first: most frames


def _is_guest(chain, key, verdict, classify, comment):
    R, M = ruleset._rule, ruleset._match
    if classify == "set":
        return [R(chain, [M(ruleset._meta(key), f"@{GUEST_PORTS_SET}")] + verdict, comment)]
    return [R(chain, [M(ruleset._meta(key), p)] + verdict, comment) for p in PROTO_PREFIX_ORDER]


def _proto_skeleton(base=None, replace=True, named_set=True):
    """replace: start from an empty table (like ruleset.full); else create
    the shared objects idempotently and refill them (like ruleset.update)."""
    T, R, M, P = ruleset._t, ruleset._rule, ruleset._match, ruleset._payload
    drop = ruleset._DROP
    base = ruleset.skeleton() if base is None else base
    shared = ("prerouting", "forward", "guest-pre-ip", "guest-pre-ip6", ruleset.GUEST_UPLINK_CHAIN)
    cmds = [{"add": {"table": {"family": ruleset.FAMILY, "name": ruleset.TABLE}}}]
    if replace:
        cmds += [{"delete": {"table": {"family": ruleset.FAMILY, "name": ruleset.TABLE}}},
                 {"add": {"table": {"family": ruleset.FAMILY, "name": ruleset.TABLE}}}]
    cmds += [
        # NB a named interval set cannot be refilled idempotently: re-adding
        # its elements fails ("interval overlaps with an existing one")
        *([{"add": {"set": T(name=GUEST_PORTS_SET, type="ifname", flags=["interval"],
                             elem=list(ruleset.GUEST_PORTS))}}] if named_set else []),
        {"add": {"map": T(name=ruleset.PREROUTING_MAP, type="ifname", map="verdict")}},
        {"add": {"map": T(name=ruleset.FORWARD_MAP, type="ifname", map="verdict")}},
    ]
    for name, hook in (("prerouting", "prerouting"), ("forward", "forward")):
        cmds.append({"add": {"chain": T(name=name, type="filter", hook=hook,
                                        prio=ruleset.PRIORITY, policy="accept")}})
    for name in ("guest-pre-ip", "guest-pre-ip6", ruleset.GUEST_UPLINK_CHAIN):
        cmds.append({"add": {"chain": T(name=name)}})
    if not replace:
        cmds += [{"flush": {"chain": T(name=name)}} for name in shared]
    cmds += [
        R("prerouting", [{"vmap": {"key": ruleset._meta("ibrname"), "data": f"@{ruleset.PREROUTING_MAP}"}}]),
        R("forward", [{"vmap": {"key": ruleset._meta("ibrname"), "data": f"@{ruleset.FORWARD_MAP}"}}]),
        R("guest-pre-ip", [M(P("udp", "sport"), 67)] + drop, "guest acts as DHCP server"),
        R("guest-pre-ip", [M(P("udp", "sport"), 547)] + drop, "guest acts as DHCPv6 server"),
        R("guest-pre-ip6", [ruleset._icmpv6_type(["nd-router-advert", "nd-redirect"])] + drop,
          "guest acts as IPv6 router"),
        R("guest-pre-ip6", [M(P("udp", "sport"), 67)] + drop, "guest acts as DHCP server"),
        R("guest-pre-ip6", [M(P("udp", "sport"), 547)] + drop, "guest acts as DHCPv6 server"),
    ]
    # guest-to-uplink: as in ruleset.skeleton()
    cmds += [c for c in base
             if c.get("add", {}).get("rule", {}).get("chain") == ruleset.GUEST_UPLINK_CHAIN]
    return cmds


def _proto_bridge(bridge, classify, flush=False):
    R, M, P = ruleset._rule, ruleset._match, ruleset._payload
    drop, accept = ruleset._DROP, ruleset._ACCEPT
    gw, b = bridge.gateway, bridge.name
    ch = {k: f"{k}-{b}" for k in ("pre", "pre-guest", "pre-ip", "pre-arp", "pre-ip6",
                                   "fwd", "fwd-guest", "fwd-to-guest", "fwd-guest-arp", "fwd-guest-ip6")}
    cmds = [{"add": {"chain": ruleset._t(name=c)}} for c in ch.values()]
    if flush:
        cmds += [{"flush": {"chain": ruleset._t(name=c)}} for c in ch.values()]
    goto = lambda c: [{"goto": {"target": ch[c] if c in ch else c}}]  # noqa: E731
    # prerouting (before FDB learning): only frames from guest ports are checked
    cmds += _is_guest(ch["pre"], "iifname", goto("pre-guest"), classify, "frames from guest ports")
    cmds += [R(ch["pre-guest"], [M(P("ether", "saddr"), mac)] + drop,
               "guest sends with a gateway MAC (FDB poisoning)") for mac in gw.macs]
    cmds += [R(ch["pre-guest"], [M(P("ether", "type"), t)] + goto(c))
             for t, c in (("ip", "pre-ip"), ("arp", "pre-arp"), ("ip6", "pre-ip6"))]
    cmds += [R(ch["pre-ip"], [M(P("ip", "saddr"), str(ip))] + drop,
               "guest sends from a gateway IPv4 address") for ip in gw.ipv4]
    cmds.append(R(ch["pre-ip"], goto("guest-pre-ip")))
    cmds += [R(ch["pre-arp"], [M(P("arp", "saddr ether"), mac)] + drop,
               "guest claims a gateway MAC in ARP") for mac in gw.macs]
    cmds += [R(ch["pre-arp"], [M(P("arp", "saddr ip"), str(ip))] + drop,
               "guest claims a gateway IPv4 address in ARP") for ip in gw.ipv4]
    cmds += [R(ch["pre-ip6"], [M(P("ip6", "saddr"), str(ip))] + drop,
               "guest sends from a gateway IPv6 address") for ip in gw.ipv6]
    cmds += [R(ch["pre-ip6"], [ruleset._icmpv6_type(["nd-neighbor-advert"]),
                               M({"payload": {"base": "th", "offset": 64, "len": 128}},
                                 ruleset._ipv6_as_int(ip))] + drop,
               "guest claims a gateway IPv6 address in a neighbour advertisement") for ip in gw.ipv6]
    cmds.append(R(ch["pre-ip6"], goto("guest-pre-ip6")))
    # forward: classify the input port once, the output port at most once
    cmds += _is_guest(ch["fwd"], "iifname", goto("fwd-guest"), classify, "from a guest port")
    cmds += _is_guest(ch["fwd"], "oifname", goto("fwd-to-guest"), classify, "uplink/host to a guest port")
    cmds.append(R(ch["fwd"], accept, "uplink/host traffic"))
    cmds += [R(ch["fwd-to-guest"], [M(P("ether", "saddr"), mac)] + accept) for mac in gw.macs]
    cmds.append(R(ch["fwd-to-guest"], drop, "only the gateway reaches guests from outside"))
    cmds += _is_guest(ch["fwd-guest"], "oifname", drop, classify, "guest to guest")
    cmds += [R(ch["fwd-guest"], [M(P("ether", "daddr"), mac)] + accept, "guest to gateway")
             for mac in gw.macs]
    if gw.ipv4:
        cmds.append(R(ch["fwd-guest"], [M(P("ether", "type"), "arp")] + goto("fwd-guest-arp")))
        cmds += [R(ch["fwd-guest-arp"], [M(P("arp", "operation"), "request"),
                                          M(P("arp", "daddr ip"), str(ip))] + accept,
                   "guest resolves a gateway IPv4 address") for ip in gw.ipv4]
        cmds.append(R(ch["fwd-guest-arp"], goto(ruleset.GUEST_UPLINK_CHAIN)))
    if gw.ipv6:
        targets = sorted({str(ip) for ip in gw.ipv6} |
                         {str(addresses.solicited_node(ip)) for ip in gw.ipv6})
        cmds.append(R(ch["fwd-guest"], [M(P("ether", "type"), "ip6")] + goto("fwd-guest-ip6")))
        cmds += [R(ch["fwd-guest-ip6"], [ruleset._icmpv6_type(["nd-neighbor-solicit"]),
                                          M(P("ip6", "daddr"), t)] + accept,
                   "guest resolves a gateway IPv6 address") for t in targets]
        cmds.append(R(ch["fwd-guest-ip6"], goto(ruleset.GUEST_UPLINK_CHAIN)))
    cmds.append(R(ch["fwd-guest"], goto(ruleset.GUEST_UPLINK_CHAIN)))
    cmds += [
        {"add": {"element": ruleset._t(name=ruleset.PREROUTING_MAP, elem=[[b, {"jump": {"target": ch["pre"]}}]])}},
        {"add": {"element": ruleset._t(name=ruleset.FORWARD_MAP, elem=[[b, {"jump": {"target": ch["fwd"]}}]])}},
    ]
    return cmds


PROTO_CHAINS = ("pre-guest", "pre-ip", "pre-arp", "pre-ip6",
                "fwd-guest", "fwd-to-guest", "fwd-guest-arp", "fwd-guest-ip6")


def _proto_removal(name):
    """After ruleset._removal(name): the prototype's other chains of the bridge."""
    chains = [ruleset._t(name=f"{k}-{name}") for k in PROTO_CHAINS]
    return ([{"add": {"chain": c}} for c in chains] + [{"flush": {"chain": c}} for c in chains]
            + [{"delete": {"chain": c}} for c in chains])


def microseg_proto(n, classify="set"):
    cmds = _proto_skeleton(named_set=classify == "set")
    for b in managed_bridges(n):
        cmds += _proto_bridge(b, classify)
    return {"nftables": cmds}


# ------------------------------------------------------- cost ablations

def _drop_elements(tr, mapname):
    return {"nftables": [c for c in tr["nftables"]
                         if not ("element" in c.get("add", {}) and c["add"]["element"]["name"] == mapname)]}


def _guest_set_as_tap_prefix(tr):
    """NOT equivalent (only tap* ports are guests): measures what the three
    wildcard-set lookups cost compared with one inlined prefix compare."""
    tr = copy.deepcopy(tr)
    _walk_replace(tr, {"set": list(ruleset.GUEST_PORTS)}, "tap*")
    return tr


# name -> builder(n, ports): ports = how many guest ports are bound, for the
# designs in PORT_DESIGNS (the others ignore it: they bind no port)
JSON_DESIGNS = {
    "microseg": microseg,
    "microseg-0.2.0": lambda n, ports=None: microseg_020(n),
    "microseg-nocount": microseg_nocount,
    "microseg-ps-off": lambda n, ports=None: microseg_ps_off(n),
    "microseg-noanon": lambda n, ports=DEFAULT_PORTS: microseg_noanon(n, ports),
    # the prototypes predate port security: compare them with microseg-0.2.0
    "microseg-proto": lambda n, ports=None: microseg_proto(n),
    "microseg-proto-prefix": lambda n, ports=None: microseg_proto(n, "prefix"),
    # ablations (cost attribution only; not complete rulesets)
    "abl-skeleton": lambda n, ports=DEFAULT_PORTS: _drop_elements(
        _drop_elements(microseg(n, ports), ruleset.FORWARD_MAP), ruleset.PREROUTING_MAP),
    "abl-pre-only": lambda n, ports=DEFAULT_PORTS: _drop_elements(microseg(n, ports), ruleset.FORWARD_MAP),
    "abl-fwd-only": lambda n, ports=DEFAULT_PORTS: _drop_elements(microseg(n, ports), ruleset.PREROUTING_MAP),
    "abl-tap-prefix": lambda n, ports=DEFAULT_PORTS: _guest_set_as_tap_prefix(microseg(n, ports)),
}
PORT_DESIGNS = {"microseg", "microseg-nocount", "microseg-noanon", "abl-skeleton", "abl-pre-only", "abl-fwd-only",
                "abl-tap-prefix"}


# ------------------------------------------------- per-rule cost probes
# One base chain on the bridge forward hook holding K copies of one kind of
# rule, none of which matches the benchmark's guest -> gateway frame; the
# per-rule cost is (cost(K) - cost(0)) / K.

RULE_PROBES = {
    "empty": "",
    "ifname-prefix": 'meta iifname "zzz*"',
    "ifname-set": 'meta iifname { "fwpr*", "zzz*", "veth*" }',
    "ifname-exact": 'meta iifname "zzz100i0"',
    "brname": 'meta ibrname "vnet7"',
    "ether-saddr": "ether saddr 02:00:00:00:01:09",
    "ip-saddr": "ip saddr 10.100.0.9",
    "ip6-saddr": "ip6 saddr fd00::9",
    "arp-op": "arp operation request",
    "udp-sport": "udp sport 67",
    "icmpv6-type": "icmpv6 type nd-router-advert",
}


_MAP_PROBES = {   # the product's dispatch: a miss in the bridge-name verdict map
    "vmap-rhash": "",                         # what ruleset.py creates (no size: rhashtable)
    "vmap-hash": "size 65536; ",              # fixed-size hash table
}
RULE_PROBES.update({k: "meta ibrname vmap @m" for k in _MAP_PROBES})


def rule_probe(kind, k=20, table="probe"):
    rule = RULE_PROBES[kind]
    lines = [f"add table bridge {table}",
             f"add chain bridge {table} pfwd {{ type filter hook forward priority 0; policy accept; }}"]
    if kind in _MAP_PROBES:
        lines += [f"add chain bridge {table} other",
                  f"add map bridge {table} m {{ type ifname : verdict; {_MAP_PROBES[kind]}}}",
                  f'add element bridge {table} m {{ "vnet7" : jump other }}']
        return "\n".join(lines + [f"add rule bridge {table} pfwd {rule}"] * k) + "\n"
    if rule:
        lines += [f"add rule bridge {table} pfwd {rule} counter drop"] * k
    return "\n".join(lines) + "\n"


TEXT_DESIGNS = {"article": article}
TEXT_DESIGNS.update({f"probe-{kind}": (lambda n, kind=kind: rule_probe(kind)) for kind in RULE_PROBES})
