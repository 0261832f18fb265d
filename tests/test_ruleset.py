import ipaddress
import json

import pytest

from pve_microseg.policy import ruleset
from pve_microseg.parse.addresses import eui64_link_local
from pve_microseg.model.bridge import Gateway, ManagedBridge


def bridge(name="vnet1", macs=("02:00:00:00:01:01",), v4=("10.100.0.1",), v6=("2001:db8:100::1",)):
    return ManagedBridge(name=name, gateway=Gateway(
        macs=tuple(macs),
        ipv4=tuple(ipaddress.ip_address(a) for a in v4),
        ipv6=tuple(ipaddress.ip_address(a) for a in v6)))


def commands(transaction, verb, kind):
    return [c[verb][kind] for c in transaction["nftables"] if verb in c and kind in c[verb]]


def rules_of(transaction, chain):
    return [r for r in commands(transaction, "add", "rule") if r["chain"] == chain]


def test_one_base_chain_per_hook_whatever_the_bridge_count():
    for n in (1, 100, 4094):
        t = ruleset.full([bridge(f"vnet{i}") for i in range(n)])
        base = [c for c in commands(t, "add", "chain") if "hook" in c]
        assert sorted(c["hook"] for c in base) == ["forward", "prerouting"]
        assert len(commands(t, "add", "element")) == 2 * n + 2     # + the two VLAN maps' refill
        # the base chains hold two rules each: the lookup by bridge name, and
        # the one for <bridge>v<tag> (reached only when the first misses)
        assert len(rules_of(t, "prerouting")) == 2
        assert [r["expr"] for r in rules_of(t, "forward")] == [
            [{"vmap": {"key": {"meta": {"key": "ibrname"}}, "data": "@forward"}}],
            [{"vmap": {"key": {"meta": {"key": "ibrname"}}, "data": "@forward-vlan"}}]]


def test_full_replaces_the_table_atomically():
    t = ruleset.full([bridge()])
    first = t["nftables"][:3]
    assert first[0] == {"add": {"table": {"family": "bridge", "name": "pve_microseg"}}}
    assert first[1] == {"delete": {"table": {"family": "bridge", "name": "pve_microseg"}}}
    assert first[2] == first[0]
    json.dumps(t)   # plain JSON, nothing else


def test_per_bridge_chains_and_map_elements():
    t = ruleset.full([bridge("web"), bridge("db")])
    chains = {c["name"] for c in commands(t, "add", "chain")}
    assert {"pre-web", "fwd-web", "pre-db", "fwd-db"} <= chains
    elems = {(e["name"], e["elem"][0][0], e["elem"][0][1]["jump"]["target"])
             for e in commands(t, "add", "element")}
    assert ("prerouting", "web", "pre-web") in elems
    assert ("forward", "db", "fwd-db") in elems


def _text(rules):
    return json.dumps(rules)


def test_prerouting_guards_gateway_identity():
    b = bridge(macs=("02:00:00:00:01:01", "00:00:5e:00:01:01"),
               v6=("2001:db8:100::1", str(eui64_link_local("02:00:00:00:01:01"))))
    rules = rules_of(ruleset.update([b.name], load=[b]), "pre-vnet1")
    comments = [r.get("comment", "") for r in rules]
    assert comments[0] == "only frames from guest ports are checked here"
    assert [e["match"] for e in rules[0]["expr"][:3]] == [
        {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": p} for p in ("fwpr*", "tap*", "veth*")]
    assert rules[0]["expr"][3] == {"accept": None}
    def rights(comment, i=0):
        return [r["expr"][i]["match"]["right"] for r in rules if r.get("comment") == comment]

    # one rule per value: several MACs (VRRP) give several rules
    assert rights("guest sends with a gateway MAC (FDB poisoning)") == [
        "02:00:00:00:01:01", "00:00:5e:00:01:01"]
    assert rights("guest claims a gateway IPv4 address in ARP") == ["10.100.0.1"]
    na = [r["expr"] for r in rules
          if r.get("comment") == "guest claims a gateway IPv6 address in a neighbour advertisement"]
    assert na[0][1]["match"]["left"] == {"payload": {"base": "th", "offset": 64, "len": 128}}
    assert [e[1]["match"]["right"] for e in na] == [
        "0x20010db8010000000000000000000001", "0xfe80000000000000000000fffe000101"]
    assert rules[-1]["expr"] == [{"goto": {"target": "guest-pre"}}]


def test_forward_rules_order():
    rules = rules_of(ruleset.update(["vnet1"], load=[bridge()]), "fwd-vnet1")
    comments = [r.get("comment") for r in rules]
    assert comments[:6] == ["from a gateway (guests cannot send with its MAC, see pre-vnet1)"] + \
        ["nothing but a gateway reaches a guest"] * 3 + ["to a gateway", "uplink/host traffic"]
    assert [r["expr"][0]["match"]["right"] for r in rules[1:4]] == ["fwpr*", "tap*", "veth*"]
    # no lookups in sets of wildcard names on the hot path
    assert '"set": ["fwpr*"' not in json.dumps(rules)
    ns = [r for r in rules if r.get("comment") == "guest resolves a gateway IPv6 address"]
    # the gateway address itself (unicast NUD) and its solicited-node group
    assert [r["expr"][1]["match"]["right"] for r in ns] == ["2001:db8:100::1", "ff02::1:ff00:1"]
    assert rules[-1]["expr"] == [{"goto": {"target": "guest-to-uplink"}}]


def test_families_without_gateway_address_get_no_rules():
    rules = rules_of(ruleset.update(["vnet1"], load=[bridge(v6=())]), "pre-vnet1") + \
        rules_of(ruleset.update(["vnet1"], load=[bridge(v6=())]), "fwd-vnet1")
    assert "ip6" not in _text(rules) and "nd-neighbor" not in _text(rules)
    rules = rules_of(ruleset.update(["vnet1"], load=[bridge(v4=())]), "fwd-vnet1")
    assert '"arp"' not in _text(rules)


def test_no_anonymous_sets_per_bridge():
    """Anonymous sets make a 4,094-bridge load quadratic: none per bridge."""
    many = bridge(macs=("02:00:00:00:01:01", "00:00:5e:00:01:01"), v4=("10.100.0.1", "10.100.0.2"),
                  v6=("2001:db8:100::1", "fe80::1"))
    assert '"set"' not in json.dumps(ruleset.bridge_rules(many))


def test_guest_to_uplink_ends_in_drop():
    rules = rules_of(ruleset.full([]), "guest-to-uplink")
    assert rules[-1]["expr"][-1] == {"goto": {"target": "drop-to-uplink"}}
    assert [r["comment"] for r in rules[:-1]] == [
        "router solicitation", "MLD reports (multicast snooping)", "IGMP reports (multicast snooping)",
        "DHCP client", "DHCPv6 client"]


def test_update_refills_the_chains_of_a_bridge_it_loads():
    cmds = ruleset.update(["vnet1"], load=[bridge()])["nftables"]
    flushed = [c["flush"]["chain"]["name"] for c in cmds if "flush" in c and "chain" in c["flush"]]
    assert {"pre-vnet1", "fwd-vnet1", "prerouting", "forward"} <= set(flushed)
    # every flush of a bridge chain comes after the chain is (idempotently) added
    for name in ("pre-vnet1", "fwd-vnet1"):
        add = cmds.index({"add": {"chain": {"family": "bridge", "table": "pve_microseg", "name": name}}})
        flush = cmds.index({"flush": {"chain": {"family": "bridge", "table": "pve_microseg", "name": name}}})
        assert add < flush


def test_remove_bridge_never_fails_on_absence():
    cmds = ruleset.remove_bridge("vnet1", [])["nftables"]
    verbs = [(next(iter(c)), next(iter(next(iter(c.values()))))) for c in cmds]
    # whatever is deleted was added first in the same transaction
    for i, (verb, kind) in enumerate(verbs):
        if verb == "delete":
            assert ("add", kind) in verbs[:i]
    deleted = [c["delete"]["chain"]["name"] for c in cmds if "delete" in c and "chain" in c["delete"]]
    assert deleted == ["pre-vnet1", "fwd-vnet1"]


def test_guest_packets_for_other_addresses_of_the_subnet_are_dropped():
    b = ManagedBridge(name="v1", gateway=bridge().gateway,
                      subnets=(ipaddress.ip_network("10.100.0.0/24"), ipaddress.ip_network("2001:db8:100::/64")))
    rules = rules_of(ruleset.full([b]), "pre-v1")
    intra = [r for r in rules if "through the gateway" in r.get("comment", "")]
    assert len(intra) == 2
    v4 = intra[0]["expr"]
    assert v4[0]["match"] == {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                              "right": "10.100.0.1"}
    assert v4[1]["match"]["right"] == {"prefix": {"addr": "10.100.0.0", "len": 24}}
    assert v4[-1] == {"goto": {"target": "drop-hairpin"}}
    # before the shared guards (goto ends the chain)
    assert rules.index(intra[-1]) < len(rules) - 1
    allowed = ManagedBridge(name="v1", gateway=b.gateway, subnets=b.subnets, intra_vnet_routing="allow")
    assert not [r for r in rules_of(ruleset.full([allowed]), "pre-v1")
                if "through the gateway" in r.get("comment", "")]


def test_node_as_gateway_without_mac_isolates_every_guest_port():
    b = ManagedBridge(name="v1", gateway=Gateway(ipv4=(ipaddress.ip_address("10.9.0.1"),)),
                      subnets=(ipaddress.ip_network("10.9.0.0/24"),), node_is_gateway=True)
    fwd = rules_of(ruleset.full([b]), "fwd-v1")
    assert not any("from a gateway" in r.get("comment", "") for r in fwd)
    drops = [r for r in fwd if r.get("comment") == "nothing but a gateway reaches a guest"]
    assert len(drops) == 3 and fwd.index(drops[0]) == 0


def test_vlan_bridges_of_tagged_nics_get_their_bridges_chains():
    t = ruleset.full([bridge("vmbr0"), bridge("vmbr0v5"), bridge("vnet1")])
    elems = {c["name"]: c["elem"] for c in commands(t, "add", "element") if c["name"].endswith("-vlan")}
    assert elems["prerouting-vlan"] == [["vmbr0v*", {"jump": {"target": "pre-vmbr0"}}],
                                        ["vnet1v*", {"jump": {"target": "pre-vnet1"}}]]
    assert elems["forward-vlan"][0] == ["vmbr0v*", {"jump": {"target": "fwd-vmbr0"}}]
    # vmbr0v5 is managed by name (the exact map wins): no overlapping vmbr0v5v*
    assert '"vmbr0v5"' in json.dumps(commands(t, "add", "element"))


def test_every_managed_chain_ends_in_a_verdict():
    """A frame of a managed bridge never returns to the base chain (where the
    VLAN lookup would cost it a second lookup)."""
    t = ruleset.full([bridge()])
    assert rules_of(t, "pre-vnet1")[0]["expr"][-1] == {"accept": None}
    assert rules_of(t, "pre-vnet1")[-1]["expr"] == [{"goto": {"target": "guest-pre"}}]
    assert rules_of(t, "guest-pre")[-1]["expr"] == [{"accept": None}]
    assert rules_of(t, "fwd-vnet1")[-1]["expr"] == [{"goto": {"target": "guest-to-uplink"}}]
    assert rules_of(t, "guest-to-uplink")[-1]["expr"][-1] == {"goto": {"target": "drop-to-uplink"}}
    for cls in ruleset.DROP_CLASSES:
        assert rules_of(t, f"drop-{cls}")[-1]["expr"][-1] == {"drop": None}


def test_update_and_removal_refill_the_vlan_maps():
    cmds = ruleset.remove_bridge("vnet1", ["vnet2"])["nftables"]
    flushes = [i for i, c in enumerate(cmds) if "flush" in c and "map" in c["flush"]]
    deletes = [i for i, c in enumerate(cmds) if "delete" in c and "chain" in c["delete"]]
    assert flushes and deletes and min(flushes) < min(deletes)
    refill = [c["add"]["element"] for c in cmds if "add" in c and "element" in c["add"]
              and c["add"]["element"]["name"] == "prerouting-vlan"]
    assert refill == [dict(family="bridge", table="pve_microseg", name="prerouting-vlan",
                           elem=[["vnet2v*", {"jump": {"target": "pre-vnet2"}}]])]


def test_vlan_maps_come_after_every_chain_of_the_transaction():
    """nftables 1.0.6 on Linux 6.1 refuses an interval map's element jumping
    to a chain created after the map in one transaction (seen in the QEMU tier)."""
    for t in (ruleset.full([bridge("vnet1"), bridge("vmbr0")]),
              ruleset.update(["vnet1", "vmbr0"], load=[bridge("vmbr0")], remove=["vnet2"])):
        cmds = t["nftables"]
        chains = [i for i, c in enumerate(cmds) if "chain" in c.get("add", {})]
        vlan_maps = [i for i, c in enumerate(cmds) if "map" in c.get("add", {})
                     and c["add"]["map"]["name"].endswith("-vlan")]
        assert vlan_maps
        # every chain that exists at the end (_removal's add-then-delete may follow)
        created = [i for i in chains if not any("delete" in d and d["delete"].get("chain", {}).get("name")
                                                == cmds[i]["add"]["chain"]["name"] for d in cmds[i:])]
        assert min(vlan_maps) > max(created)


def test_bind_sets_are_hash_sets_and_any_is_a_set_of_ports():
    """An interval set's lookup costs in proportion to its size (bench/README.md):
    every port-security set is a hash set, "any" a set of port names."""
    from pve_microseg.model.binding import PortBinding
    t = ruleset.full([bridge()], [PortBinding(port="tap101i0", mac="bc:24:11:00:00:01", ipv4=None,
                                               ipv6=("fe80::1",), vmid=101, nic="net0", bridge="vnet1",
                                               mode="mac")])
    sets = {c["name"]: c for c in commands(t, "add", "set")}
    assert all("flags" not in s for s in sets.values())
    elems = {c["name"]: c["elem"] for c in commands(t, "add", "element") if c["name"].startswith("bind-")}
    assert elems["bind-any-ip4"] == ["tap101i0"] and "bind-ip4" not in elems
    assert elems["bind-ip6"] == [{"concat": ["tap101i0", "fe80::1"]}]


def test_only_plain_bridges_cost_a_vlan_lookup():
    vnet = ManagedBridge(name="vnet1", gateway=bridge().gateway, vnet=True)
    t = ruleset.full([vnet])
    assert len(rules_of(t, "prerouting")) == 1 and len(rules_of(t, "forward")) == 1
    assert not [c for c in commands(t, "add", "element") if c["name"].endswith("-vlan")]


def test_a_bound_ip_source_leaves_guest_bind_after_one_lookup():
    from pve_microseg.model.binding import PortBinding
    b = PortBinding(port="tap101i0", mac="bc:24:11:00:00:01", ipv4=("10.0.0.5",), ipv6=("fe80::1",),
                    vmid=101, nic="net0", bridge="vnet1", mode="mac+ip")
    t = ruleset.full([bridge()], [b])
    first = rules_of(t, "guest-bind")[:2]
    assert [r["expr"][-1] for r in first] == [{"return": None}, {"return": None}]
    assert first[0]["expr"][0]["match"]["right"] == "@bind-fast4"
    elems = {c["name"]: c["elem"] for c in commands(t, "add", "element") if c["name"].startswith("bind-fast")}
    assert elems == {"bind-fast4": [{"concat": ["tap101i0", "bc:24:11:00:00:01", "10.0.0.5"]}],
                     "bind-fast6": [{"concat": ["tap101i0", "bc:24:11:00:00:01", "fe80::1"]}]}
    # a port whose MAC or addresses go unchecked has no fast path: the full checks apply
    any_ip = PortBinding(port="tap102i0", mac="bc:24:11:00:00:02", ipv4=None, ipv6=None,
                         vmid=102, nic="net0", bridge="vnet1", mode="mac")
    assert not [c for c in commands(ruleset.full([bridge()], [any_ip]), "add", "element")
                if c["name"].startswith("bind-fast")]


def _bind_chain(transaction):
    return [c["add"]["rule"] for c in transaction["nftables"]
            if "add" in c and "rule" in c["add"] and c["add"]["rule"]["chain"] == ruleset.GUEST_BIND_CHAIN]


def test_nd_target_is_bound_only_where_nftables_can_match_it():
    """nftables >= 1.1: a neighbour advertisement's target must be one of the
    port's IPv6 addresses, checked before the IPv6 fast path (which looks at
    the source only) and after the IPv4 one (IPv4 pays nothing); 1.0.6
    cannot load the rule, so it is left out there."""
    with_nd = _bind_chain(ruleset.full([], nd_target=True))
    without = _bind_chain(ruleset.full([]))
    assert len(with_nd) == len(without) + 1
    assert not any(r.get("comment") == ruleset.ND_TARGET_COMMENT for r in without)
    comments = [r.get("comment") for r in with_nd]
    i = comments.index(ruleset.ND_TARGET_COMMENT)
    assert comments[i - 1] == "a bound MAC and IPv4 source (one lookup)"
    assert comments[i + 1] == "a bound MAC and IPv6 source (one lookup)"
    expr = json.dumps(with_nd[i]["expr"])
    assert '"field": "taddr"' in expr and f'"@{ruleset.BIND_IP6}"' in expr and f'"@{ruleset.ANY_IP6}"' in expr
    assert with_nd[i]["expr"][-1] == {"goto": {"target": "drop-address-binding"}}
    # every transaction that refills guest-bind carries the same choice
    for t in (ruleset.update([], nd_target=True), ruleset.remove_bridge("vmbr0", [], nd_target=True)):
        assert [r.get("comment") for r in _bind_chain(t)] == comments


# ------------------------------------------------------------ drop accounting

def _class_of(rule):
    """The drop class a rule sends to (its last statement), or None."""
    last = rule["expr"][-1]
    target = last.get("goto", {}).get("target", "")
    return target[len("drop-"):] if target.startswith("drop-") else None


def _all_rules(t):
    return commands(t, "add", "rule")


def _full_with_everything():
    b = ManagedBridge(name="v1", gateway=bridge().gateway, port_security="mac+ip",
                      subnets=(ipaddress.ip_network("10.100.0.0/24"),))
    return ruleset.full([b], nd_target=True)


def test_every_drop_is_counted_per_port_in_its_class():
    """No rule drops by itself but the drop-<class> chains: every other drop
    keeps its own counter and goes to its class's chain."""
    t = _full_with_everything()
    for r in _all_rules(t):
        if r["chain"].startswith("drop-"):
            continue
        assert {"drop": None} not in r["expr"], r
        if _class_of(r) is not None:
            assert r["expr"][-2] == {"counter": {"packets": 0, "bytes": 0}}, r
    used = {_class_of(r) for r in _all_rules(t)} - {None}
    assert used == set(ruleset.DROP_CLASSES)


def test_each_class_chain_counts_by_input_port_then_drops_even_when_full():
    t = ruleset.full([])
    for cls in ruleset.DROP_CLASSES:
        rules = rules_of(t, f"drop-{cls}")
        assert [r["expr"] for r in rules] == [
            [{"meter": {"name": f"drops-{cls}", "size": ruleset.DROP_SET_SIZE,
                        "key": {"meta": {"key": "iifname"}}, "stmt": {"counter": None}}}, {"drop": None}],
            [{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}]]
        assert rules[1]["comment"] == ruleset.DROP_FULL_COMMENT
    # the chains exist before any rule goes to them
    cmds = t["nftables"]
    first_goto = min(i for i, c in enumerate(cmds) if "add" in c and "rule" in c["add"]
                     and _class_of(c["add"]["rule"]))
    added = [i for i, c in enumerate(cmds) if c.get("add", {}).get("chain", {}).get("name", "").startswith("drop-")]
    assert len(added) == len(ruleset.DROP_CLASSES) and max(added) < first_goto


@pytest.mark.parametrize("comment, cls", [
    ("guest sends with a gateway MAC (FDB poisoning)", "gateway-mac"),
    ("guest claims a gateway MAC in ARP", "gateway-mac"),
    ("guest claims a gateway IPv4 address in ARP", "gateway-ip"),
    ("guest sends from a gateway IPv4 address", "gateway-ip"),
    ("guest sends from a gateway IPv6 address", "gateway-ip"),
    ("guest claims a gateway IPv6 address in a neighbour advertisement", "gateway-ip"),
    ("guest acts as DHCP server", "rogue-dhcp"),
    ("guest acts as DHCPv6 server", "rogue-dhcp"),
    ("guest acts as IPv6 router", "rogue-ra"),
    ("guest sends with a MAC that is not its NIC's (port security)", "mac-binding"),
    ("guest claims a MAC that is not its NIC's in ARP", "mac-binding"),
    ("guest claims an IPv4 address that is not its own in ARP", "address-binding"),
    ("guest sends from an IPv4 address that is not its own", "address-binding"),
    ("guest sends from an IPv6 address that is not its own", "address-binding"),
    (ruleset.ND_TARGET_COMMENT, "address-binding"),
    ("guest sends a frame that is not plain IPv4, ARP or IPv6 (VLAN-tagged, other protocols)", "protocol"),
    ("nothing but a gateway reaches a guest", "guest-to-guest"),
    ("guest frame not addressed to the gateway", "to-uplink"),
    ("guest sends to another address of its subnet through the gateway (routed back to another guest)",
     "hairpin"),
])
def test_drop_rules_are_in_their_class(comment, cls):
    rules = [r for r in _all_rules(_full_with_everything()) if r.get("comment") == comment]
    assert rules and {_class_of(r) for r in rules} == {cls}


def test_every_transaction_that_adds_a_meter_rule_recreates_it_whole():
    """A meter's set is created by its rule: the shared skeleton, which every
    full and update transaction carries, flushes and refills the drop chains
    (a named dynamic set re-added alone would fail on nftables 1.0.6)."""
    for t in (ruleset.full([]), ruleset.update(["vnet1"], load=[bridge()]), ruleset.remove_bridge("vnet1", [])):
        flushed = {c["flush"]["chain"]["name"] for c in t["nftables"] if "chain" in c.get("flush", {})}
        assert {f"drop-{cls}" for cls in ruleset.DROP_CLASSES} <= flushed
        assert not [c for c in t["nftables"] if "set" in c.get("add", {})
                    and c["add"]["set"]["name"].startswith("drops-")]
