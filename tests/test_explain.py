"""`pve-microseg explain`: the evaluator of our rule subset (policy/explain.py),
the frames and paths it builds (policy/explainpath.py), the command.

The dataplane tier checks the same evaluator against real packets
(tests/dataplane/explained.py, check explain/agrees-with-kernel); here it
runs on the desired rulesets of the same simulated cluster, and must give
every verdict the dataplane matrix expects.
"""

import copy
import json
import tempfile
from pathlib import Path

import pytest

import golden
from dataplane import cluster, explained
from dataplane.checks import matrix
from dataplane.topology import GUEST, VNET1
from pve_microseg.edges.paths import Paths
from pve_microseg.entry import cli
from pve_microseg.flows import reconcile
from pve_microseg.model.errors import EndpointError, UnsupportedRule
from pve_microseg.policy import explain as X, explainpath, frame as Fr, ruleset


def _golden_table(scenario, nd_target):
    env = golden.pve_tree(Path(tempfile.mkdtemp()), scenario)
    data = reconcile.show(Paths.from_env(env), env, golden._Probe(nd_target)).data
    return X.from_transactions([data["nftables"]], ruleset.FAMILY, ruleset.TABLE)


@pytest.mark.parametrize("nd_target", [True, False], ids=["nft-1.1", "nft-1.0.6"])
@pytest.mark.parametrize("scenario", golden.SCENARIOS)
def test_every_rule_shape_of_the_golden_scenarios_is_supported(scenario, nd_target):
    """A rule shape the generator makes and the evaluator does not know fails here."""
    table = _golden_table(scenario, nd_target)
    assert table.chains and table.sets
    X.check_supported(table)


def _with_rule(table, expr, chain="guest-pre", at=0):
    table = copy.deepcopy(table)
    table.chains[chain].rules.insert(at, {"chain": chain, "expr": expr, "comment": "added"})
    return table


def test_an_unknown_rule_shape_is_refused():
    table = _with_rule(_golden_table("vnet-dual-stack", True), [{"limit": {"rate": 10, "per": "second"}}])
    with pytest.raises(UnsupportedRule, match="unknown statement"):
        X.check_supported(table)
    for expr in ([{"match": {"op": "<", "left": {"meta": {"key": "iifname"}}, "right": "x"}}],
                 [{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}],
                 [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "flags"}},
                             "right": "syn"}}]):
        with pytest.raises(UnsupportedRule):
            X.check_supported(_with_rule(_golden_table("vnet-dual-stack", True), expr))


# ---- the simulated cluster of the dataplane tier -----------------------------------------

def _cluster_tree(root):
    pve = root / "etc/pve"
    files = cluster.sdn_files([VNET1], 1)
    files.update(cluster.guest_files())
    files[".version"] = "1\n"
    files["microseg.yaml"] = cluster.microseg_yaml([VNET1])
    for rel, text in files.items():
        p = pve / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return {"PVE_MICROSEG_PVE_DIR": str(pve), "PVE_MICROSEG_STATE_DIR": str(root / "state"),
            "PVE_MICROSEG_RUN_DIR": str(root / "run"), "PVE_MICROSEG_NETWORK_DIR": str(root / "network"),
            "PVE_MICROSEG_SYS_CLASS_NET": str(root / "sys"), "PVE_MICROSEG_NODE": "node1"}


def _desired(nd_target, tmp):
    tables = {}
    for node in ("node1", "node2"):
        env = dict(_cluster_tree(tmp / node), PVE_MICROSEG_NODE=node)
        data = reconcile.show(Paths.from_env(env), env, golden._Probe(nd_target)).data
        tables[node] = X.from_transactions([data["nftables"]], ruleset.FAMILY, ruleset.TABLE)
    return tables


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return {nd: _desired(nd, tmp_path_factory.mktemp(f"cluster-{nd}")) for nd in (False, True)}


@pytest.mark.parametrize("release,nd_target", [("bookworm", False), ("trixie", True)])
def test_the_evaluator_gives_every_verdict_the_dataplane_expects(tables, release, nd_target):
    expected = {c.name: c.expected("microseg", release) for c in matrix("microseg")}
    got = explained.verdicts(tables[nd_target])
    assert set(got) <= set(expected)
    wrong = {n: (v, w) for n, (v, w) in got.items() if v != expected[n]}
    assert not wrong
    # mode none: no table, everything passes
    assert {v for v, _ in explained.verdicts({}).values()} == {"delivered"}


def test_the_agreement_check_fails_on_a_disagreement(tables):
    observed = {n: (v, "") for n, (v, _) in explained.verdicts(tables[False]).items()}
    assert explained.agreement(observed, tables[False])[0] == "pass"
    observed["arp-request/g101->g102"] = ("delivered", "")
    status, detail = explained.agreement(observed, tables[False])
    assert status == "fail" and "arp-request/g101->g102: packets delivered, explain blocked" in detail
    del observed["nd-solicit/g101->g102"]
    assert "not observed: nd-solicit/g101->g102" in explained.agreement(observed, tables[False])[1]


def _deciders(tables, cases):
    seen = set()
    for frame, hops in cases:
        _, traces = X.path_verdict(tables, frame, hops)
        for _, hooks in traces:
            for t in hooks:
                seen |= {(s.chain, s.position) for s in t.steps if s.action}
    return seen


def _extra_cases():
    """Frames the matrix does not send, one for each remaining verdict path."""
    g, h = GUEST[101], GUEST[102]
    out = explained.to_gateway(g)
    gw = "02:00:00:00:01:01"

    def f(**kw):
        return Fr.Frame(**{"src_mac": g.mac, "dst_mac": gw, **kw})
    icmp6 = dict(ethertype=Fr.ETH_IP6, proto=58)
    return [
        (f(ethertype=Fr.ETH_8021Q), out),                                    # VLAN-tagged
        (f(ethertype=Fr.ETH_ARP, arp_op=1, arp_sha="02:00:00:09:09:09", arp_spa=g.ip4, arp_tha="00:00:00:00:00:00",
           arp_tpa="10.100.0.1"), out),                                      # ARP sender MAC not its own
        (f(ethertype=Fr.ETH_ARP, arp_op=1, arp_sha=g.mac, arp_spa="0.0.0.0", arp_tha="00:00:00:00:00:00",
           arp_tpa=g.ip4), out),                                             # ARP probe
        (f(ethertype=Fr.ETH_IP6, src_ip=g.ip6, dst_ip="2001:db8:100::1", proto=17, sport=547, dport=546), out),
        (f(dst_mac="33:33:00:01:00:02", ethertype=Fr.ETH_IP6, src_ip=g.ip6, dst_ip="ff02::1:2", proto=17,
           sport=546, dport=547), out),                                      # DHCPv6 client
        (f(dst_mac="33:33:00:00:00:02", src_ip=g.ip6, dst_ip="ff02::2", icmp_type=133, **icmp6), out),   # RS
        (f(dst_mac="33:33:00:00:00:16", src_ip="::", dst_ip="ff02::16", icmp_type=143, **icmp6), out),   # DAD MLD
        (f(dst_mac="33:33:00:00:00:16", src_ip=g.ip6, dst_ip="ff02::16", icmp_type=131, **icmp6), out),  # MLD
        (f(dst_mac="01:00:5e:00:00:16", src_ip=g.ip4, dst_ip="224.0.0.22", proto=2), out),              # IGMP
        (f(src_ip="10.100.0.77", dst_ip="10.100.0.1", proto=17, sport=1, dport=2), out),               # IPv4 spoof
        (f(src_ip=h.ip4, dst_ip="10.100.0.1", proto=17, sport=1, dport=2,
           src_mac=h.mac), out),                                             # another guest's MAC
        (f(ethertype=Fr.ETH_IP6, src_ip=g.ip6, dst_ip="2001:db8:100::1", proto=58, icmp_type=137), out),  # redirect
        (f(dst_mac="33:33:ff:00:00:01", src_ip=g.ip6, dst_ip="2001:db8:100::1", icmp_type=135,
           nd_target="2001:db8:100::1", **icmp6), out),                      # NS to the gateway's address
        (f(src_mac="02:00:00:00:09:09", dst_mac=Fr.BROADCAST, ethertype=Fr.ETH_ARP, arp_op=1),
         [X.Hop("node1", VNET1.name, explained.VNET_UPLINK, "vnet1")]),      # uplink -> host
    ]


def test_every_verdict_of_our_rules_is_reached(tables):
    """Each rule that decides something (accept, drop, return, jump, goto) on
    node1 is met and acts for some frame of the matrix or of _extra_cases:
    every verdict path is exercised."""
    t = tables[True]
    cases = [leg for legs in explained.cases().values() for leg in legs] + _extra_cases()
    seen = _deciders(t, cases)
    shared = ("prerouting", "forward", "guest-pre", "guest-to-uplink", "guest-bind", "pre-vnet1", "fwd-vnet1")
    acting = {(c.name, i + 1) for c in t["node1"].chains.values() if c.name in shared
              for i, r in enumerate(c.rules) if any(X._verdict(s) or "vmap" in s for s in r["expr"])}
    # the second of two rules for the same thing (one per gateway address/MAC) may go unmet
    duplicates = {(c, p) for c, p in acting
                  if any(r.get("comment") == t["node1"].chains[c].rules[p - 1].get("comment")
                         for r in t["node1"].chains[c].rules[:p - 1])}
    # behind port security: test_the_gateway_guards_decide_for_a_port_without_binding_checks
    guards = {(c, p) for c, p in acting if c == "pre-vnet1" and "gateway" in
              (t["node1"].chains[c].rules[p - 1].get("comment") or "")}
    missing = sorted(acting - seen - duplicates - guards)
    assert not missing, "\n".join(f"{c}#{p} {t['node1'].chains[c].rules[p - 1].get('comment')}" for c, p in missing)


def test_the_gateway_guards_decide_for_a_port_without_binding_checks():
    """The gateway guards of pre-<bridge> stand behind port security: they
    decide for a guest whose port security is off (VM 104 of the
    port-security scenario), each for its own frame."""
    table = _golden_table("port-security", True)
    me, gw_mac, hop = "bc:24:11:00:01:04", "00:00:5e:00:01:64", X.Hop("pve1", "vnet0", "tap104i0", "uplink")
    ll = "fe80::be24:11ff:fe00:104"

    def f(**kw):
        return Fr.Frame(**{"src_mac": me, "dst_mac": Fr.BROADCAST, **kw})
    arp = dict(ethertype=Fr.ETH_ARP, arp_op=2, arp_tha="00:00:00:00:00:00", arp_tpa="10.101.1.9")
    cases = {
        "guest sends with a gateway MAC (FDB poisoning)": f(src_mac=gw_mac, ethertype=Fr.ETH_ARP),
        "guest claims a gateway MAC in ARP": f(arp_sha=gw_mac, arp_spa="10.101.1.50", **arp),
        "guest claims a gateway IPv4 address in ARP": f(arp_sha=me, arp_spa="10.101.1.1", **arp),
        "guest sends from a gateway IPv4 address": f(src_ip="10.101.1.1", dst_ip="10.101.255.255", proto=17,
                                                     sport=1, dport=2),
        "guest sends from a gateway IPv6 address": f(ethertype=Fr.ETH_IP6, src_ip="fd80::1", dst_ip="ff02::1",
                                                     proto=17, sport=1, dport=2),
        "guest claims a gateway IPv6 address in a neighbour advertisement": f(
            ethertype=Fr.ETH_IP6, src_ip=ll, dst_ip="ff02::1", proto=58, icmp_type=136, nd_target="fd80::1"),
    }
    for comment, frame in cases.items():
        verdict, traces = X.path_verdict({"pve1": table}, frame, [hop])
        assert verdict == X.DROP and traces[-1][1][-1].decided_by.comment == comment, comment


def test_counters_logs_and_set_updates_decide_nothing(tables):
    """Statements another part of pve-microseg adds before a drop (drop
    accounting): no-ops for the verdict."""
    t = copy.deepcopy(tables[True])
    for chain in t["node1"].chains.values():
        for rule in chain.rules:
            if {"drop": None} in rule["expr"]:
                i = rule["expr"].index({"drop": None})
                rule["expr"][i:i] = [{"set": {"op": "update", "elem": {"meta": {"key": "iifname"}},
                                              "set": "@drops-x"}}, {"log": {"prefix": "pve-microseg "}}]
    X.check_supported(t["node1"])
    assert explained.verdicts(t) == explained.verdicts(tables[True])


def _as_listing(table):
    """The table as `nft -j list table` shows it: objects, elements with
    counters wrapped in "elem", nftables 1.0.6's raw target as a number."""
    base = {"family": "bridge", "table": "pve_microseg"}
    objs = [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "bridge", "name": "pve_microseg", "handle": 1}}]
    for s in table.sets.values():
        kind = "map" if s.is_map else "set"
        obj = dict(base, name=s.name, type=list(s.types) if len(s.types) > 1 else s.types[0], handle=2)
        if s.is_map:
            obj["map"] = "verdict"
        if s.elements:
            obj["elem"] = [{"elem": {"val": e, "counter": {"packets": 1, "bytes": 2}}} if not s.is_map else e
                           for e in s.elements]
        objs.append({kind: obj})
    for c in table.chains.values():
        obj = dict(base, name=c.name, handle=3)
        if c.hook:
            obj.update(type="filter", hook=c.hook, prio=c.prio, policy=c.policy)
        objs.append({"chain": obj})
    for c in table.chains.values():
        for r in c.rules:
            r = copy.deepcopy(r)
            for stmt in r["expr"]:
                m = stmt.get("match", {})
                if m.get("left", {}).get("payload") == {"base": "th", "offset": 64, "len": 128}:
                    m["right"] = int(m["right"], 16)
                if m.get("left", {}).get("payload") == {"protocol": "icmpv6", "field": "taddr"} and False:
                    pass
            objs.append({"rule": dict(r, handle=4)})
    return objs


def test_the_loaded_listing_gives_the_same_verdicts(tables):
    for nd in (False, True):
        listed = {n: X.from_listing(_as_listing(t), "bridge", "pve_microseg") for n, t in tables[nd].items()}
        X.check_supported(listed["node1"])
        assert explained.verdicts(listed) == explained.verdicts(tables[nd])
    assert X.from_listing([], "bridge", "pve_microseg") is None
    assert X.from_listing(None, "bridge", "pve_microseg") is None


RECORDED = Path(__file__).parent / "fixtures/dataplane/explain-bookworm.json"


def test_a_recorded_kernel_run_agrees():
    """The kernel's own listings (nft -j, nftables 1.0.6) of a dataplane run
    and what its packets showed (tests/fixtures/dataplane/, from
    results-microseg.json): the listing is read as it is, and agrees."""
    run = json.loads(RECORDED.read_text())
    tables = explained.tables_from_listings(run["rulesets-json"])
    for t in tables.values():
        X.check_supported(t)
    observed = {name: (outcome, "") for name, outcome in run["observed"].items()}
    assert explained.agreement(observed, tables) == (
        "pass", "116 of 116 checks agree (not evaluated: dad, and every check that is not the fate of frames)")


def test_absent_fields_never_match():
    """A match on a protocol the frame does not carry fails, even with !=."""
    arp = Fr.Frame("02:00:00:00:00:01", Fr.BROADCAST, Fr.ETH_ARP, arp_op=1, arp_spa="10.0.0.1", arp_tpa="10.0.0.2")
    assert arp.field("ip", "saddr") is None and arp.field("udp", "sport") is None
    test = X._match({"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.0.0.9"},
                    X.Table())
    assert test(X.Packet(arp, "b", "tap1i0")) is False
    ip = Fr.Frame("02:00:00:00:00:01", Fr.BROADCAST, src_ip="10.0.0.1", dst_ip="10.0.0.2", proto=17, sport=1,
                  dport=2)
    assert test(X.Packet(ip, "b", "tap1i0")) is True


# ---- the command ------------------------------------------------------------------------

def _run(env, *argv):
    out = __import__("io").StringIO()
    rc = cli.main(list(argv), environ=env, out=out)
    return rc, out.getvalue()


@pytest.fixture
def env(tmp_path):
    return _cluster_tree(tmp_path)


def test_explain_guest_to_guest_names_the_deciding_rule(env):
    rc, out = _run(env, "explain", "vm:101", "ct:102", "--proto", "arp")
    assert rc == 0
    assert "DROPPED by pve-microseg: fwd-vnet1#2" in out or "DROPPED by pve-microseg: fwd-vnet1#4" in out
    assert '"nothing but a gateway reaches a guest"' in out
    assert "Proxmox guest firewall of CT 102" in out and "Proxmox VNet firewall of vnet1" in out
    assert "cannot see:" in out


def test_explain_json_cross_node_and_gateway(env):
    rc, out = _run(env, "explain", "vm:101", "vm:201", "--proto", "nd", "--output-format", "json")
    data = json.loads(out)
    assert rc == 0 and data["verdict"] == "drop"
    assert [h["node"] for h in data["hops"]] == ["node1"]                 # dropped before the uplink
    assert data["not-crossed"] == [{"node": "node2", "bridge": "vnet1", "in": "uplink", "out": "tap201i0"}]
    assert data["decided-by"]["comment"] == "guest frame not addressed to the gateway"
    rc, out = _run(env, "explain", "ct:102", "gateway", "-6", "--output-format", "json")
    data = json.loads(out)
    assert data["verdict"] == "accept" and data["decided-by"] is None
    assert data["to"]["mac"] == "02:00:00:00:01:01" and data["frame"]["dst-ip"] == "2001:db8:100::1"
    # an address: a guest's, or a gateway's seen from the guest's bridge
    rc, out = _run(env, "explain", "10.100.0.1", "10.100.0.201", "--output-format", "json")
    data = json.loads(out)
    assert data["from"]["label"] == "gateway 10.100.0.1 of vnet1" and data["to"]["vmid"] == 201
    assert data["verdict"] == "accept" and data["hops"][0]["node"] == "node2"


def test_explain_routed_zone_and_tagged_nic(env):
    rc, out = _run(env, "explain", "vm:501", "ct:502", "--proto", "udp", "--port", "9999", "--output-format", "json")
    data = json.loads(out)
    assert data["verdict"] == "drop" and data["decided-by"]["chain"] == "pre-evnet"
    rc, out = _run(env, "explain", "gateway", "vm:501", "--output-format", "json")
    data = json.loads(out)
    assert data["verdict"] == "accept" and data["hops"] == [] and "output path" in data["note"]
    rc, out = _run(env, "explain", "vm:105", "ct:106", "--proto", "tcp", "--output-format", "json")
    data = json.loads(out)
    assert data["hops"][0]["bridge"] == "vmbr0v100" and data["verdict"] == "drop"


@pytest.mark.parametrize("argv,message", [
    (["vm:999", "gateway"], "no guest 999"),
    (["ct:101", "gateway"], "write vm:101"),
    (["vm:101/net3", "gateway"], "has no net3"),
    (["gateway", "10.9.9.9"], "one endpoint must be a guest"),
    (["vm:101", "vm:501"], "through a router"),
    (["nonsense", "vm:101"], "expected vm:<vmid>"),
])
def test_explain_refuses_endpoints_it_cannot_place(env, argv, message):
    rc, out = _run(env, "explain", *argv, "--output-format", "json")
    assert rc == 1 and message in json.loads(out)["error"]["message"]


def test_explain_loaded_reads_the_kernel_table(env, tables):
    class FakeNft:
        def __init__(self, dry_run=False):
            pass

        def knows_nd_target(self):
            return False

        def list_table(self, family, table):
            return _as_listing(tables[False]["node1"])

    from pve_microseg.flows import explain
    data = explain.explain(Paths.from_env(env), "vm:101", "gateway", "arp", loaded=True, nft_factory=FakeNft,
                           environ=env).data
    assert data["hops"][0]["ruleset"] == "loaded" and data["verdict"] == "accept"

    class NoTable(FakeNft):
        def list_table(self, family, table):
            return None
    data = explain.explain(Paths.from_env(env), "vm:101", "ct:102", "arp", loaded=True, nft_factory=NoTable,
                           environ=env).data
    assert data["verdict"] == "accept" and "no table" in data["hops"][0]["ruleset"]


def test_plan_refuses_an_unknown_protocol():
    with pytest.raises(EndpointError):
        explainpath.plan(None, None, "sctp")
