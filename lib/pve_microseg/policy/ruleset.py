"""The desired nftables state for managed bridges, as libnftables JSON (pure).

One table, `bridge pve_microseg`.  Two base chains, one per hook, each with a
single rule that dispatches on the bridge name through a verdict map, so the
cost for a packet does not grow with the number of managed bridges, and a
frame on a bridge we do not manage costs one hash lookup per hook:

    prerouting (before FDB learning)     forward (per output port)
      meta ibrname vmap @prerouting        meta ibrname vmap @forward
        -> chain pre-<bridge>                -> chain fwd-<bridge>

A guest NIC with `tag=N` on a plain bridge that is not VLAN-aware is plugged
into `<bridge>vN`, a bridge Proxmox creates at guest start (no ifupdown2
hook runs for it): a second map per hook, with one interval element
`"<bridge>v*"` per managed bridge, sends such bridges to the chains of the
bridge they belong to.  Only frames no exact element matched look there:
every managed bridge's chains end in a verdict.

On a managed bridge, guest ports (tap*, veth*, fwpr*) are isolated ports and
every other port (the uplink, the host) is promiscuous, as in a private VLAN
(RFC 5517), enforced on every node so it holds across nodes:

* pre-<bridge>: a guest may not send with a gateway's MAC (that would poison
  the bridge FDB even if the frame were dropped later), claim a gateway's IP
  (ARP, NA, IP source), send RAs/redirects or answer as a DHCP server, nor
  send an IP packet for another address of its own subnets: only a router
  would take it (the node itself in a Simple/EVPN zone, or the external
  gateway) and route it back into the bridge to another guest, as a frame
  from the gateway's MAC (or from the node's own output path, which no
  bridge forward chain sees).  Dropped here, at the guest's port, this
  holds in every zone type and in a VRF too (`intra-vnet-routing: allow`
  leaves it to the router's policy).
* fwd-<bridge>: a guest port receives only what a gateway MAC sends (so
  guest -> guest is dropped, on this node and, at the receiving node, across
  nodes); guest -> uplink passes only to a gateway MAC, or as the
  broadcasts/multicasts needed to find the gateway (ARP/NS for its address,
  RS, MLD/IGMP reports, DHCP client messages).

Every drop is counted per guest port and class, without a rule per guest:
a drop rule ends in `counter goto drop-<class>` (its own counter, as
before), and chain drop-<class> holds two rules:

    meter drops-<class> size 65535 { iifname counter } drop
    counter drop        (only when drops-<class> is full: dropped all the same)

The meter is a set of the ports that dropped something of that class, one
counter per port, filled from the packet path (`update`, keyed by the input
port).  A meter, not a named set with `update @set`: nftables 1.0.6 cannot
give a named set the `dynamic` flag through JSON, so a second transaction
re-adding the set fails (File exists); a meter's set is created by its rule,
in every transaction that (re)adds the rule, on 1.0.6 and 1.1 alike.  A full
meter makes its rule stop before `drop` (the kernel's dynset breaks when it
cannot add an element); the second rule then drops, counted in its own
counter, so a full meter never lets a frame through.  Elements never expire:
they count since the table (or, on nftables 1.0.6, the drop chains) were
last loaded; a full `apply` rebuilds the table and starts every counter at
zero, as it does for the rule counters.  Only an attack adds an element, and
65535 ports dropping the same class between two loads is far beyond one
node.  nftables 1.1 lists the meter as a set `drops-<class>` (flags dynamic)
and the statement as `add @drops-<class> { iifname counter }`; 1.0.6 lists it
as written, and its elements under `list meters`.  The classes: DROP_CLASSES.

With `log: on` in microseg.yaml, each drop-<class> chain starts with one
more rule, which logs before the frame is counted and dropped:

    meter log-<class> size 65535 { iifname limit rate 1/minute burst 1 packets }
        log prefix "pve-microseg <class>: " flags ether

At most one kernel log line per guest port and class a minute: the meter
holds one token bucket per input port (an attack of one port does not
silence another's line), and a frame over the limit, or a full meter, ends
the rule before `log`.  The rule has no verdict, so the two rules after it
count and drop every frame, logged or not.  The kernel log (nf_log_syslog,
level warn, journald's _TRANSPORT=kernel) needs no daemon, unlike
`log group N` (nflog, ulogd2); `flags ether` prints MACSRC=/MACDST= rather
than raw header bytes.  The line's IN=tap<vmid>i<n> (or veth/fwpr) names
the guest and NIC.  The kernel writes lines from network namespaces other
than the initial one only with net.netfilter.nf_log_all_netns=1 (a node's
bridges are in the initial one).  nftables 1.1 lists the meter as a set
`log-<class>` and `add @log-<class> { iifname limit rate 1/minute burst 1
packets }`; after an update that turns logging off (the if-up.d hook), 1.1
keeps those sets, unused, until the next full load.

Four transaction builders, each one atomic libnftables transaction: replace
the whole table (full: apply, boot), (re)load some bridges and remove others
(update: the if-up.d hook), remove one bridge (remove_bridge: if-down.d),
remove the table (delete_table: package removal).
"""

from ..parse import addresses

FAMILY = "bridge"
TABLE = "pve_microseg"
GUEST_PORTS = ("fwpr*", "tap*", "veth*")
PREROUTING_MAP = "prerouting"
FORWARD_MAP = "forward"
PREROUTING_VLAN_MAP = "prerouting-vlan"     # "<bridge>v*": the bridges of tagged NICs
FORWARD_VLAN_MAP = "forward-vlan"
GUEST_PRE_CHAIN = "guest-pre"          # bridge-independent guards on guest frames
GUEST_UPLINK_CHAIN = "guest-to-uplink"  # multicasts a guest may send towards the gateway
GUEST_BIND_CHAIN = "guest-bind"        # port security: a guest port sends only as its NIC
# Port security: (port . source) pairs a guest port may send from, and the
# ports whose source of that kind is not checked ("any").  Hash sets: one
# O(1) lookup per check whatever the number of bound ports (an interval set
# here, able to hold "any" as a range, cost per lookup in proportion to its
# size: bench/README.md).
# The fast path: (port . MAC . address) of every bound source, so that an IP
# packet from a bound MAC and address leaves guest-bind after one lookup.
BIND_MAC, BIND_IP4, BIND_IP6 = "bind-mac", "bind-ip4", "bind-ip6"
ANY_MAC, ANY_IP4, ANY_IP6 = "bind-any-mac", "bind-any-ip4", "bind-any-ip6"
FAST_IP4, FAST_IP6 = "bind-fast4", "bind-fast6"
_ANY_SET = {BIND_MAC: ANY_MAC, BIND_IP4: ANY_IP4, BIND_IP6: ANY_IP6}
BIND_SETS = (BIND_MAC, BIND_IP4, BIND_IP6, ANY_MAC, ANY_IP4, ANY_IP6, FAST_IP4, FAST_IP6)
PRIORITY = -200

# What a drop stops, the per-port counter's class (drop-<class>, drops-<class>).
DROP_CLASSES = {
    "gateway-mac": "guest sends with, or claims in ARP, a gateway's MAC",
    "gateway-ip": "guest sends from, or claims (ARP, neighbour advertisement), a gateway's address",
    "rogue-dhcp": "guest answers as a DHCP or DHCPv6 server",
    "rogue-ra": "guest sends router advertisements or redirects",
    "mac-binding": "guest sends with, or claims in ARP, a MAC that is not its NIC's",
    "address-binding": "guest sends from, or claims, an address that is not its own",
    "protocol": "guest sends a frame that is not plain IPv4, ARP or IPv6 (VLAN-tagged, other ethertypes)",
    "guest-to-guest": "a frame from a guest port to another guest port",
    "to-uplink": "a guest frame towards the uplink not addressed to a gateway",
    "hairpin": "guest sends to another address of its subnet, to be routed back",
}
DROP_SET_SIZE = 65535
DROP_FULL_COMMENT = "its meter is full: dropped, not counted per port"
# `log: on` in microseg.yaml: a kernel log line per guest port and class, at most one per LOG_RATE
LOG_PREFIX = "pve-microseg"
LOG_RATE = (1, "minute")
LOG_COMMENT = "logged, at most once a minute per port"


def pre_chain(bridge):
    return f"pre-{bridge}"


def fwd_chain(bridge):
    return f"fwd-{bridge}"


def drop_chain(cls):
    return f"drop-{cls}"


def drop_meter(cls):
    return f"drops-{cls}"


# ------------------------------------------------------------- expressions

def _t(**kw):
    d = {"family": FAMILY, "table": TABLE}
    d.update(kw)
    return d


def _payload(protocol, field):
    return {"payload": {"protocol": protocol, "field": field}}


def _meta(key):
    return {"meta": {"key": key}}


def _match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def _values(values):
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else {"set": values}


def _not_guest_port(key):
    """Expressions matching a port that is none of tap*, veth*, fwpr*."""
    return [_match(_meta(key), prefix, "!=") for prefix in GUEST_PORTS]


def _rule(chain, exprs, comment=None):
    rule = _t(chain=chain, expr=exprs)
    if comment:
        rule["comment"] = comment
    return {"add": {"rule": rule}}


def _drop(cls):
    """The end of a drop rule of class `cls`: its own counter, then the
    class's chain, which counts per port and drops."""
    assert cls in DROP_CLASSES, cls
    return [{"counter": {"packets": 0, "bytes": 0}}, {"goto": {"target": drop_chain(cls)}}]


def meter(cls):
    """The statement counting a drop of class `cls` by input port."""
    return {"meter": {"name": drop_meter(cls), "size": DROP_SET_SIZE,
                      "key": _meta("iifname"), "stmt": {"counter": None}}}


def log_meter(cls):
    return f"log-{cls}"


def log_prefix(cls):
    """The kernel log line's prefix for a drop of class `cls` (journalctl -k --grep pve-microseg)."""
    return f"{LOG_PREFIX} {cls}: "


def log_statements(cls):
    """At most one kernel log line per input port per LOG_RATE for class
    `cls`: a per-port rate limit (a meter keyed by the input port), then
    `log`.  Over the limit, or with the meter full, the rule stops before
    its log; it has no verdict either way."""
    rate, per = LOG_RATE
    return [{"meter": {"name": log_meter(cls), "size": DROP_SET_SIZE, "key": _meta("iifname"),
                       "stmt": {"limit": {"rate": rate, "per": per, "burst": 1}}}},
            {"log": {"prefix": log_prefix(cls), "flags": "ether"}}]


def _drop_chain_rules(log=False):
    """drop-<class>: (with log) log once a minute per port, count per port
    and drop; a full meter drops all the same."""
    cmds = []
    for cls, what in DROP_CLASSES.items():
        if log:
            cmds.append(_rule(drop_chain(cls), log_statements(cls), f"{what}: {LOG_COMMENT}"))
        cmds += [_rule(drop_chain(cls), [meter(cls), {"drop": None}], f"{what}: counted per port"),
                 _rule(drop_chain(cls), [{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}],
                       DROP_FULL_COMMENT)]
    return cmds
_ACCEPT = [{"accept": None}]


def _icmpv6_type(types):
    return _match(_payload("icmpv6", "type"), _values(types))


def _ipv6_as_int(ip):
    return f"0x{int(ip):032x}"


# ---------------------------------------------------------------- skeleton

def skeleton(nd_target=False, log=False):
    """Commands that create (idempotently) and refill the shared objects.
    nd_target: libnftables reads `icmpv6 taddr` (nftables >= 1.1, Debian 13):
    a neighbour advertisement's target is then bound to the port too.
    log: each drop is logged (rate-limited per port and class) before it is
    counted (`log: on` in microseg.yaml)."""
    base = [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"map": _t(name=PREROUTING_MAP, type="ifname", map="verdict")}},
        {"add": {"map": _t(name=FORWARD_MAP, type="ifname", map="verdict")}},
    ]
    # port security: (port . source) pairs a guest port may send from; one
    # lookup per check whatever the number of guests, ranges for "any"
    for name, kind in ((BIND_MAC, "ether_addr"), (BIND_IP4, "ipv4_addr"), (BIND_IP6, "ipv6_addr")):
        base.append({"add": {"set": _t(name=name, type=["ifname", kind])}})
    for name in (ANY_MAC, ANY_IP4, ANY_IP6):
        base.append({"add": {"set": _t(name=name, type="ifname")}})
    for name, kind in ((FAST_IP4, "ipv4_addr"), (FAST_IP6, "ipv6_addr")):
        base.append({"add": {"set": _t(name=name, type=["ifname", "ether_addr", kind])}})
    for name, hook in (("prerouting", "prerouting"), ("forward", "forward")):
        base.append({"add": {"chain": _t(name=name, type="filter", hook=hook,
                                         prio=PRIORITY, policy="accept")}})
    drops = [drop_chain(cls) for cls in DROP_CLASSES]
    for name in (*drops, GUEST_PRE_CHAIN, GUEST_UPLINK_CHAIN, GUEST_BIND_CHAIN):
        base.append({"add": {"chain": _t(name=name)}})
    for name in ("prerouting", "forward", *drops, GUEST_PRE_CHAIN, GUEST_UPLINK_CHAIN, GUEST_BIND_CHAIN):
        base.append({"flush": {"chain": _t(name=name)}})
    base += _drop_chain_rules(log)

    base += [
        _rule("prerouting", [{"vmap": {"key": _meta("ibrname"), "data": f"@{PREROUTING_MAP}"}}],
              "managed bridges: one lookup by bridge name"),
        _rule("forward", [{"vmap": {"key": _meta("ibrname"), "data": f"@{FORWARD_MAP}"}}],
              "managed bridges: one lookup by bridge name"),
        # guards on every frame a guest sends into a managed bridge
        _rule(GUEST_PRE_CHAIN, [_icmpv6_type(["nd-router-advert", "nd-redirect"])] + _drop("rogue-ra"),
              "guest acts as IPv6 router"),
        _rule(GUEST_PRE_CHAIN, [_match(_payload("udp", "sport"), 67)] + _drop("rogue-dhcp"),
              "guest acts as DHCP server"),
        _rule(GUEST_PRE_CHAIN, [_match(_payload("udp", "sport"), 547)] + _drop("rogue-dhcp"),
              "guest acts as DHCPv6 server"),
        _rule(GUEST_PRE_CHAIN, _ACCEPT, "checked (ends here: no second lookup)"),
        # what a guest may multicast/broadcast towards the uplink (the gateway)
        _rule(GUEST_UPLINK_CHAIN, [_icmpv6_type(["nd-router-solicit"])] + _ACCEPT,
              "router solicitation"),
        _rule(GUEST_UPLINK_CHAIN, [_icmpv6_type(["mld-listener-report", "mld2-listener-report"])] + _ACCEPT,
              "MLD reports (multicast snooping)"),
        _rule(GUEST_UPLINK_CHAIN, [_match(_payload("ip", "protocol"), "igmp")] + _ACCEPT,
              "IGMP reports (multicast snooping)"),
        _rule(GUEST_UPLINK_CHAIN, [_match(_payload("udp", "sport"), 68),
                                   _match(_payload("udp", "dport"), 67)] + _ACCEPT,
              "DHCP client"),
        _rule(GUEST_UPLINK_CHAIN, [_match(_payload("udp", "sport"), 546),
                                   _match(_payload("udp", "dport"), 547)] + _ACCEPT,
              "DHCPv6 client"),
        _rule(GUEST_UPLINK_CHAIN, _drop("to-uplink"), "guest frame not addressed to the gateway"),
    ]
    base += _bind_rules(nd_target)
    return base


def _port_is_not(bound_set, field):
    """The port's binding does not name this source, and the port is not one
    whose sources of this kind go unchecked: on the usual path (a bound
    source) one hash lookup, the first match already fails."""
    return [_match({"concat": [_meta("iifname"), field]}, f"@{bound_set}", "!="),
            _match(_meta("iifname"), f"@{_ANY_SET[bound_set]}", "!=")]


ND_TARGET_COMMENT = ("guest claims an IPv6 address that is not its own in a neighbour advertisement "
                     "(nftables >= 1.1)")


def _bind_rules(nd_target=False):
    """guest-bind: a guest port sends only with its NIC's MAC and, with
    mac+ip, from its NIC's addresses; a port without a binding sends nothing.
    Address-less requests (DHCP, ARP probes, IPv6 duplicate address
    detection) pass: they claim no address.  First the fast path: an IP
    packet whose port, MAC and source address are bound together returns
    after one lookup (the checks below would all pass it).

    With nd_target, a neighbour advertisement's target (the address it
    claims, what the ARP sender address is for IPv4) must be bound to the
    port as well; it is checked before the IPv6 fast path, which looks at
    the source address only.  nftables 1.0.6 (Debian 12) has no
    `icmpv6 taddr` and cannot put the raw bytes into a set lookup through
    its JSON interface, so there the target is checked against the
    gateway's addresses only (bridge_rules)."""
    nd = [_rule(GUEST_BIND_CHAIN, [_icmpv6_type(["nd-neighbor-advert"])]
                + _port_is_not(BIND_IP6, _payload("icmpv6", "taddr")) + _drop("address-binding"), ND_TARGET_COMMENT)]
    return [
        _rule(GUEST_BIND_CHAIN, [_match({"concat": [_meta("iifname"), _payload("ether", "saddr"),
                                                    _payload("ip", "saddr")]}, f"@{FAST_IP4}"),
                                 {"return": None}],
              "a bound MAC and IPv4 source (one lookup)"),
        *(nd if nd_target else []),
        _rule(GUEST_BIND_CHAIN, [_match({"concat": [_meta("iifname"), _payload("ether", "saddr"),
                                                    _payload("ip6", "saddr")]}, f"@{FAST_IP6}"),
                                 {"return": None}],
              "a bound MAC and IPv6 source (one lookup)"),
        _rule(GUEST_BIND_CHAIN, _port_is_not(BIND_MAC, _payload("ether", "saddr")) + _drop("mac-binding"),
              "guest sends with a MAC that is not its NIC's (port security)"),
        # A VLAN tag (802.1Q/802.1ad, even VLAN 0) would hide the packet from
        # every check below, and any other ethertype from the gateway guards.
        _rule(GUEST_BIND_CHAIN,
              [_match(_payload("ether", "type"), {"set": ["ip", "arp", "ip6"]}, "!=")] + _drop("protocol"),
              "guest sends a frame that is not plain IPv4, ARP or IPv6 (VLAN-tagged, other protocols)"),
        _rule(GUEST_BIND_CHAIN, _port_is_not(BIND_MAC, _payload("arp", "saddr ether")) + _drop("mac-binding"),
              "guest claims a MAC that is not its NIC's in ARP"),
        _rule(GUEST_BIND_CHAIN, [_match(_payload("arp", "saddr ip"), "0.0.0.0"), {"return": None}],
              "ARP probe (duplicate address detection)"),
        _rule(GUEST_BIND_CHAIN, _port_is_not(BIND_IP4, _payload("arp", "saddr ip")) + _drop("address-binding"),
              "guest claims an IPv4 address that is not its own in ARP"),
        _rule(GUEST_BIND_CHAIN, [_match(_payload("ether", "daddr"), "ff:ff:ff:ff:ff:ff"),
                                 _match(_payload("ip", "saddr"), "0.0.0.0"),
                                 _match(_payload("ip", "daddr"), "255.255.255.255"),
                                 _match(_payload("udp", "sport"), 68), _match(_payload("udp", "dport"), 67),
                                 {"return": None}],
              "DHCP client without an address"),
        _rule(GUEST_BIND_CHAIN, _port_is_not(BIND_IP4, _payload("ip", "saddr")) + _drop("address-binding"),
              "guest sends from an IPv4 address that is not its own"),
        _rule(GUEST_BIND_CHAIN, [_match(_payload("ip6", "saddr"), "::"),
                                 _icmpv6_type(["mld-listener-report", "nd-neighbor-solicit",
                                               "mld2-listener-report"]), {"return": None}],
              "duplicate address detection (no address yet)"),
        _rule(GUEST_BIND_CHAIN, _port_is_not(BIND_IP6, _payload("ip6", "saddr")) + _drop("address-binding"),
              "guest sends from an IPv6 address that is not its own"),
    ]


def _elements(binding):
    """{set: [elements]} of one PortBinding (None: any, the port in the
    bind-any-* set)."""
    port = binding.port
    mac = [binding.mac] if binding.mac is not None else None
    out = {}
    for name, values in ((BIND_MAC, mac), (BIND_IP4, binding.ipv4), (BIND_IP6, binding.ipv6)):
        out[name] = [] if values is None else [{"concat": [port, str(v)]} for v in values]
        out[_ANY_SET[name]] = [port] if values is None else []
    for name, values in ((FAST_IP4, binding.ipv4), (FAST_IP6, binding.ipv6)):
        out[name] = [] if binding.mac is None or values is None else \
            [{"concat": [port, binding.mac, str(v)]} for v in values]
    return out


def bindings_elements(port_bindings):
    """{set: [elements]} of these PortBindings."""
    elems = {name: [] for name in BIND_SETS}
    for b in sorted(port_bindings, key=lambda b: b.port):
        for name, values in _elements(b).items():
            elems[name] += values
    return elems


def rebind(loaded, port_bindings):
    """Replace some ports' bindings: delete the elements `loaded` ({set: [the
    elements as the kernel lists them]}) and add these."""
    cmds = [{"delete": {"element": _t(name=name, elem=elems)}} for name, elems in loaded.items() if elems]
    return {"nftables": cmds + [{"add": {"element": _t(name=name, elem=values)}}
                                for name, values in bindings_elements(port_bindings).items() if values]}


def element_port(elem):
    """The port of a bind-* set element as the kernel lists it."""
    if isinstance(elem, str):                       # bind-any-*: the port alone
        return elem
    return elem["concat"][0] if isinstance(elem, dict) and "concat" in elem else None


def element_values(elem):
    """The MAC and/or address a bind-* set element names (none for bind-any-*)."""
    if not (isinstance(elem, dict) and "concat" in elem):
        return ()
    return tuple(v for v in elem["concat"][1:] if isinstance(v, str))


def bindings(port_bindings):
    """Replace every port binding with these (flush and refill the sets)."""
    cmds = [{"flush": {"set": _t(name=name)}} for name in BIND_SETS]
    return cmds + [{"add": {"element": _t(name=name, elem=values)}}
                   for name, values in bindings_elements(port_bindings).items() if values]


# -------------------------------------------------------------- per bridge

def _each(chain, left, values, verdict, comment, before=()):
    """One rule per value, never an anonymous set.

    The kernel names each anonymous set by scanning every set of the table,
    so thousands of bridges with a set or two each load in quadratic time;
    a few more rules per bridge keep the load linear (bench/README.md).
    """
    return [_rule(chain, list(before) + [_match(left, str(v))] + verdict, comment) for v in values]


def bridge_rules(bridge):
    """The rules of one managed bridge's two chains (list of commands)."""
    gw = bridge.gateway
    pre, fwd = pre_chain(bridge.name), fwd_chain(bridge.name)
    cmds = [_rule(pre, _not_guest_port("iifname") + _ACCEPT,
                  "only frames from guest ports are checked here")]
    if bridge.port_security != "off":
        cmds.append({"add": {"rule": _t(chain=pre, expr=[{"jump": {"target": GUEST_BIND_CHAIN}}])}})
    cmds += _each(pre, _payload("ether", "saddr"), gw.macs, _drop("gateway-mac"),
                  "guest sends with a gateway MAC (FDB poisoning)")
    cmds += _each(pre, _payload("arp", "saddr ether"), gw.macs, _drop("gateway-mac"),
                  "guest claims a gateway MAC in ARP")
    cmds += _each(pre, _payload("arp", "saddr ip"), gw.ipv4, _drop("gateway-ip"),
                  "guest claims a gateway IPv4 address in ARP")
    cmds += _each(pre, _payload("ip", "saddr"), gw.ipv4, _drop("gateway-ip"),
                  "guest sends from a gateway IPv4 address")
    cmds += _each(pre, _payload("ip6", "saddr"), gw.ipv6, _drop("gateway-ip"),
                  "guest sends from a gateway IPv6 address")
    cmds += _each(pre, {"payload": {"base": "th", "offset": 64, "len": 128}},
                  [_ipv6_as_int(ip) for ip in gw.ipv6], _drop("gateway-ip"),
                  "guest claims a gateway IPv6 address in a neighbour advertisement",
                  before=[_icmpv6_type(["nd-neighbor-advert"])])
    cmds += _intra_subnet_rules(pre, bridge)
    cmds.append({"add": {"rule": _t(chain=pre, expr=[{"goto": {"target": GUEST_PRE_CHAIN}}])}})

    # Hot paths first: gateway -> guest is one compare, guest -> gateway five;
    # port classes are matched with prefix compares (cheaper than a lookup in
    # a set of wildcard names).
    cmds += _each(fwd, _payload("ether", "saddr"), gw.macs, _ACCEPT,
                  f"from a gateway (guests cannot send with its MAC, see {pre})")
    for prefix in GUEST_PORTS:
        cmds.append(_rule(fwd, [_match(_meta("oifname"), prefix)] + _drop("guest-to-guest"),
                          "nothing but a gateway reaches a guest"))
    cmds += _each(fwd, _payload("ether", "daddr"), gw.macs, _ACCEPT, "to a gateway")
    cmds.append(_rule(fwd, _not_guest_port("iifname") + _ACCEPT, "uplink/host traffic"))
    cmds += _each(fwd, _payload("arp", "daddr ip"), gw.ipv4, _ACCEPT,
                  "guest resolves a gateway IPv4 address",
                  before=[_match(_payload("arp", "operation"), "request")])
    targets = sorted({str(ip) for ip in gw.ipv6} |
                     {str(addresses.solicited_node(ip)) for ip in gw.ipv6})
    cmds += _each(fwd, _payload("ip6", "daddr"), targets, _ACCEPT,
                  "guest resolves a gateway IPv6 address",
                  before=[_icmpv6_type(["nd-neighbor-solicit"])])
    cmds.append({"add": {"rule": _t(chain=fwd, expr=[{"goto": {"target": GUEST_UPLINK_CHAIN}}])}})
    return cmds


def _intra_subnet_rules(chain, bridge):
    """One rule per subnet: a guest's packet for an address of the subnet
    that is not a gateway's is dropped (it could only be routed back)."""
    cmds = []
    for net in bridge.routed_subnets:
        proto = "ip" if net.version == 4 else "ip6"
        gateways = [ip for ip in bridge.gateway.ips if ip.version == net.version and ip in net]
        exprs = [_match(_payload(proto, "daddr"), str(ip), "!=") for ip in gateways]
        exprs.append(_match(_payload(proto, "daddr"),
                            {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}))
        cmds.append(_rule(chain, exprs + _drop("hairpin"),
                          "guest sends to another address of its subnet through the gateway "
                          "(routed back to another guest)"))
    return cmds


def _bridge_objects(bridge):
    """Create/empty the bridge's chains, refill them, point the maps at them."""
    name = bridge.name
    cmds = []
    for chain in (pre_chain(name), fwd_chain(name)):
        cmds.append({"add": {"chain": _t(name=chain)}})
        cmds.append({"flush": {"chain": _t(name=chain)}})
    cmds += bridge_rules(bridge)
    cmds += [
        {"add": {"element": _t(name=PREROUTING_MAP, elem=[[name, {"jump": {"target": pre_chain(name)}}]])}},
        {"add": {"element": _t(name=FORWARD_MAP, elem=[[name, {"jump": {"target": fwd_chain(name)}}]])}},
    ]
    return cmds


def vlan_parents(bridges):
    """The managed bridges whose `<name>v<tag>` bridges need their rules:
    plain ones.  An SDN VNet has none: Proxmox refuses a tag on a NIC of a
    VNet that is not VLAN-aware, and plugs tagged NICs of a VLAN-aware one
    into the VNet itself."""
    return [b.name for b in bridges if not b.vnet]


def vlan_elements(names):
    """{map: [elements]} sending `<name>v*` to the chains of each of these
    bridges; a name inside another's pattern (vmbr0v5 under vmbr0v*) gets
    none of its own: the kernel refuses overlapping intervals, and the exact
    element of a managed `<bridge>v<tag>` wins anyway."""
    names = sorted(set(names))
    heads = [n for n in names if not any(n != m and n.startswith(f"{m}v") for m in names)]
    return {PREROUTING_VLAN_MAP: [[f"{n}v*", {"jump": {"target": pre_chain(n)}}] for n in heads],
            FORWARD_VLAN_MAP: [[f"{n}v*", {"jump": {"target": fwd_chain(n)}}] for n in heads]}


def _vlan_maps(names):
    """Create (if needed), empty and refill the VLAN maps for these bridges,
    and look them up from the base chains (after the lookup by name).

    Placed after every chain the transaction creates: nftables 1.0.6 with
    Linux 6.1 refuses (ENOENT) an interval map's element that jumps to a
    chain created after the map in the same transaction.  Emptied and
    refilled, never edited: deleting one interval element through the JSON
    interface fails there too."""
    vlan_maps = ((PREROUTING_VLAN_MAP, "prerouting"), (FORWARD_VLAN_MAP, "forward"))
    cmds = []
    for name, _ in vlan_maps:
        cmds += [{"add": {"map": _t(name=name, type="ifname", map="verdict", flags=["interval"])}},
                 {"flush": {"map": _t(name=name)}}]
    elements = vlan_elements(names)
    cmds += [{"add": {"element": _t(name=m, elem=elems)}} for m, elems in elements.items() if elems]
    if not elements[PREROUTING_VLAN_MAP]:
        return cmds                 # no plain bridge: frames of unmanaged bridges cost one lookup
    for name, base in vlan_maps:
        cmds.append(_rule(base, [{"vmap": {"key": _meta("ibrname"), "data": f"@{name}"}}],
                          "the <bridge>v<tag> bridges of tagged NICs on managed bridges"))
    return cmds


# ----------------------------------------------------------- transactions

def full(bridges, port_bindings=(), nd_target=False, log=False):
    """Replace the whole table with exactly these bridges and port bindings
    (one transaction).  nd_target, log: see skeleton."""
    cmds = [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"delete": {"table": {"family": FAMILY, "name": TABLE}}},
    ]
    cmds += skeleton(nd_target, log)
    for bridge in sorted(bridges, key=lambda b: b.name):
        cmds += _bridge_objects(bridge)
    cmds += _vlan_maps(vlan_parents(bridges))
    cmds += bindings(port_bindings)
    return {"nftables": cmds}


def _removal(name):
    """Remove one bridge's objects; never fails when they do not exist
    (everything deleted is added first in the same transaction)."""
    cmds = []
    for chain, mapname in ((pre_chain(name), PREROUTING_MAP), (fwd_chain(name), FORWARD_MAP)):
        cmds += [
            {"add": {"chain": _t(name=chain)}},
            {"add": {"element": _t(name=mapname, elem=[[name, {"jump": {"target": chain}}]])}},
            {"delete": {"element": _t(name=mapname, elem=[name])}},
            {"flush": {"chain": _t(name=chain)}},
            {"delete": {"chain": _t(name=chain)}},
        ]
    return cmds


def update(managed, load=(), remove=(), port_bindings=None, nd_target=False, log=False):
    """(Re)load some bridges and remove others, in one transaction, leaving
    the other bridges' rules alone.  `managed`: the names of the plain
    bridges (vlan_parents) with rules once it is done (the VLAN maps are
    refilled for them).
    Creates the shared objects if needed.  With port_bindings, they replace
    every binding; without, the bindings loaded stay.  nd_target, log: see
    skeleton (the drop chains are refilled: log must be what the table is to have)."""
    cmds = skeleton(nd_target, log)
    for bridge in sorted(load, key=lambda b: b.name):
        cmds += _bridge_objects(bridge)
    cmds += _vlan_maps(managed)         # before removals: no element may name a chain removed
    for name in sorted(remove):
        cmds += _removal(name)
    if port_bindings is not None:
        cmds += bindings(port_bindings)
    return {"nftables": cmds}


def remove_bridge(name, managed, nd_target=False, log=False):
    """Remove one bridge's rules; a no-op if it has none.  `managed`: the
    plain bridges that keep theirs (vlan_parents)."""
    return update(managed, remove=[name], nd_target=nd_target, log=log)


def binds_nd_target(transaction):
    """Whether a transaction was built for nftables >= 1.1 (nd_target)."""
    return any(c.get("add", {}).get("rule", {}).get("comment") == ND_TARGET_COMMENT
               for c in transaction["nftables"])


def logs_drops(rules):
    """Whether these rules (libnftables JSON rule objects, as sent or as
    listed) log drops: a rule of a drop-<class> chain with a `log`."""
    chains = {drop_chain(cls) for cls in DROP_CLASSES}
    return any(isinstance(r, dict) and r.get("chain") in chains
               and any(isinstance(s, dict) and "log" in s for s in r.get("expr") or ()) for r in rules)


def delete_table():
    """Remove everything of ours (never fails on absence)."""
    return {"nftables": [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"delete": {"table": {"family": FAMILY, "name": TABLE}}},
    ]}
