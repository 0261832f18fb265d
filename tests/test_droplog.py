"""`log: on` in microseg.yaml: a rate-limited kernel log line per dropped
attack class and guest port (policy/ruleset.py, drop-<class> chains).

The kernel side (one line per port and class a minute, every frame still
dropped) is checked in the QEMU tier (tests/dataplane/droplog.py); here:
the option, the rules and how both nftables releases list them, the
evaluator, and the flows that must keep the setting (apply, the hooks, the
last-good cache).
"""

import copy
import json
from pathlib import Path

import pytest

import golden
from conftest import FakeNft, unavailable
from dataplane import cluster, explained
from dataplane.topology import VNET1
from pve_microseg.edges import state
from pve_microseg.edges.log import Log
from pve_microseg.edges.paths import Paths
from pve_microseg.entry import render
from pve_microseg.flows import reconcile
from pve_microseg.model.bridge import Gateway, ManagedBridge
from pve_microseg.model.errors import ConfigError, UnsupportedRule
from pve_microseg.parse import document_json, microseg_yaml
from pve_microseg.policy import drops, explain as X, frame as Fr, nftsyntax, resolve, ruleset

BRIDGE = ManagedBridge("vmbr9", Gateway(macs=("02:00:00:00:02:01",)))


# ------------------------------------------------------------------ the option

@pytest.mark.parametrize("text,on", [
    ("log: on", True), ("log: off", False), ("log: On", True), ("log: OFF", False),
    ("log: true", True), ("log: false", False), ("log: yes", True), ("log: no", False),
    ("log: 'on'", True), ('log: "off"', False),
])
def test_log_takes_on_and_off_as_yaml_1_1_spells_them(text, on):
    doc = microseg_yaml.parse_document(text + "\nbridges: {}\n", "microseg.yaml")
    assert doc.log is on
    assert resolve.config(doc, [], None).log is on


def test_log_is_off_by_default():
    assert microseg_yaml.parse_document("bridges: {}\n", "microseg.yaml").log is False
    assert microseg_yaml.parse_document("", "microseg.yaml").log is False


@pytest.mark.parametrize("text,why", [
    ("log: 1", "'1' is not on or off"),
    ("log: enabled", "'enabled' is not on or off"),
    ("log: onn", "'onn' is not on or off"),
    ("log:", "expected on or off"),
    ("log: ''", "expected on or off"),
    ("log: [on]", "expected on or off"),
    ("log: {on: 1}", "expected on or off"),
])
def test_anything_else_is_refused_with_file_line_and_field(text, why):
    with pytest.raises(ConfigError, match=rf"^/etc/pve/microseg.yaml:2: log: {why}"):
        microseg_yaml.parse_document("bridges: {}\n" + text + "\n", "/etc/pve/microseg.yaml")


def test_a_second_log_key_is_refused():
    with pytest.raises(ConfigError, match=r"microseg.yaml:2: log: duplicate key \(first on line 1\)"):
        microseg_yaml.parse_document("log: on\nlog: off\n", "microseg.yaml")


def test_the_parsed_file_cached_for_the_hookscript_keeps_log():
    doc = microseg_yaml.parse_document("log: on\n", "microseg.yaml")
    assert document_json.from_json(json.loads(json.dumps(document_json.to_json(doc)))).log is True
    old = document_json.to_json(doc)
    del old["log"]                          # a cache an older version wrote
    assert document_json.from_json(old).log is False


# ------------------------------------------------------------------ the rules

def _rules(transaction, chain):
    return [c["add"]["rule"] for c in transaction["nftables"]
            if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain]


def _without_log_rules(transaction):
    t = copy.deepcopy(transaction)
    t["nftables"] = [c for c in t["nftables"]
                     if not ("rule" in c.get("add", {}) and any("log" in s for s in c["add"]["rule"]["expr"]))]
    return t


@pytest.mark.parametrize("nd_target", [False, True])
def test_log_off_is_the_ruleset_of_before_and_log_on_adds_only_the_log_rules(nd_target):
    """Off: exactly the transaction built without the option (the golden
    files of every older scenario are unchanged too); on: that transaction
    plus one rule at the head of each drop-<class> chain, nothing else."""
    for build in (lambda **kw: ruleset.full([BRIDGE], nd_target=nd_target, **kw),
                  lambda **kw: ruleset.update([BRIDGE.name], load=[BRIDGE], nd_target=nd_target, **kw),
                  lambda **kw: ruleset.remove_bridge(BRIDGE.name, [], nd_target=nd_target, **kw)):
        off, on = build(log=False), build(log=True)
        assert json.dumps(off) == json.dumps(build())
        assert "log" not in json.dumps(off).replace("log-", "")
        assert json.dumps(_without_log_rules(on)) == json.dumps(off)
        for cls in ruleset.DROP_CLASSES:
            first, counted, full = _rules(on, ruleset.drop_chain(cls))
            assert first["expr"] == ruleset.log_statements(cls)
            assert [s for s in first["expr"] if X._verdict(s)] == []        # decides nothing
            assert counted["expr"][-1] == full["expr"][-1] == {"drop": None}


def test_the_log_rule_limits_per_port_and_names_the_class():
    for cls in ruleset.DROP_CLASSES:
        meter, log = ruleset.log_statements(cls)
        assert meter["meter"]["key"] == {"meta": {"key": "iifname"}}            # per guest port
        assert meter["meter"]["name"] == f"log-{cls}" != ruleset.drop_meter(cls)
        assert meter["meter"]["stmt"] == {"limit": {"rate": 1, "per": "minute", "burst": 1}}
        assert log["log"]["prefix"] == f"pve-microseg {cls}: "
        assert len(log["log"]["prefix"]) < 128                                 # the kernel's NF_LOG_PREFIXLEN
        assert "level" not in log["log"]                                       # warn, the default


# What the kernel listed after loading ruleset._drop_chain_rules(log=True)
# through libnftables JSON (twice, as every transaction re-adds them), on
# Linux 6.18: nftables 1.0.6 (Debian 12) and 1.1.3 (Debian 13, chroot).
LISTED_1_0_6 = ('meter log-rogue-dhcp size 65535 { iifname limit rate 1/minute burst 1 packets } '
                'log prefix "pve-microseg rogue-dhcp: " flags ether comment '
                '"guest answers as a DHCP or DHCPv6 server: logged, at most once a minute per port"')
LISTED_1_1_3 = LISTED_1_0_6.replace("meter log-rogue-dhcp size 65535 {", "add @log-rogue-dhcp {")
JSON_1_0_6 = {"family": "bridge", "table": "pve_microseg", "chain": "drop-rogue-dhcp", "handle": 156,
              "comment": "guest answers as a DHCP or DHCPv6 server: logged, at most once a minute per port",
              "expr": [{"meter": {"key": {"meta": {"key": "iifname"}},
                                  "stmt": {"limit": {"rate": 1, "burst": 1, "per": "minute"}},
                                  "size": 65535, "name": "log-rogue-dhcp"}},
                       {"log": {"prefix": "pve-microseg rogue-dhcp: ", "flags": "ether"}}]}
JSON_1_1_3 = dict(JSON_1_0_6, expr=[
    {"set": {"op": "add", "elem": {"meta": {"key": "iifname"}}, "set": "@log-rogue-dhcp",
             "stmt": [{"limit": {"rate": 1, "burst": 1, "per": "minute"}}]}},
    {"log": {"prefix": "pve-microseg rogue-dhcp: ", "flags": "ether"}}])


@pytest.mark.parametrize("as_sets,listed", [(False, LISTED_1_0_6), (True, LISTED_1_1_3)], ids=["1.0.6", "1.1.3"])
def test_the_rendering_is_what_each_nftables_lists(as_sets, listed):
    text = nftsyntax.table([ruleset.full([BRIDGE], log=True)], ruleset.FAMILY, ruleset.TABLE, meters_as_sets=as_sets)
    assert f"\t\t{listed}\n" in text
    sets = "\tset log-rogue-dhcp {\n\t\ttype ifname\n\t\tsize 65535\n\t\tflags dynamic\n\t}\n"
    assert (sets in text) is as_sets
    # the golden file's 1.0.6 form is derived from its 1.1 form the same way
    assert f"\t\t{LISTED_1_0_6}\n" in golden.expected("drop-log", nd_target=False)
    assert f"\t\t{LISTED_1_1_3}\n" in golden.expected("drop-log", nd_target=True)


def test_the_drop_counts_ignore_the_log_meters():
    """The log's meter holds a limit per port, not a count: `status --drops`
    must not read it as drops (nftables 1.1 lists it as a set)."""
    objs = [{"set": {"family": "bridge", "table": "pve_microseg", "name": "log-rogue-dhcp", "type": "ifname",
                     "elem": [{"elem": {"val": "tap101i0", "limit": {"rate": 1, "burst": 1, "per": "minute"}}}]}},
            {"set": {"family": "bridge", "table": "pve_microseg", "name": "drops-rogue-dhcp", "type": "ifname",
                     "elem": [{"elem": {"val": "tap101i0", "counter": {"packets": 5, "bytes": 250}}}]}}]
    assert drops.counts(objs) == {("rogue-dhcp", "tap101i0"): (5, 250)}


def test_logs_drops_tells_a_logging_table():
    assert ruleset.logs_drops([c["add"]["rule"] for c in ruleset.full([BRIDGE], log=True)["nftables"]
                               if "rule" in c.get("add", {})])
    assert not ruleset.logs_drops([c["add"]["rule"] for c in ruleset.full([BRIDGE])["nftables"]
                                   if "rule" in c.get("add", {})])
    assert ruleset.logs_drops([JSON_1_0_6]) and ruleset.logs_drops([JSON_1_1_3])


# ------------------------------------------------------------------ explain

def _cluster_tables(root, log):
    tables = {}
    for node in ("node1", "node2"):
        pve = root / node / "etc/pve"
        files = cluster.sdn_files([VNET1], 1)
        files.update(cluster.guest_files())
        files[".version"] = "1\n"
        files["microseg.yaml"] = ("log: on\n" if log else "") + cluster.microseg_yaml([VNET1])
        for rel, text in files.items():
            (pve / rel).parent.mkdir(parents=True, exist_ok=True)
            (pve / rel).write_text(text)
        env = {"PVE_MICROSEG_PVE_DIR": str(pve), "PVE_MICROSEG_STATE_DIR": str(root / node / "state"),
               "PVE_MICROSEG_RUN_DIR": str(root / node / "run"), "PVE_MICROSEG_NETWORK_DIR": str(root / node / "net"),
               "PVE_MICROSEG_SYS_CLASS_NET": str(root / node / "sys"), "PVE_MICROSEG_NODE": node}
        data = reconcile.show(Paths.from_env(env), env, golden._Probe(True)).data
        assert data["log"] is log
        tables[node] = X.from_transactions([data["nftables"]], ruleset.FAMILY, ruleset.TABLE)
    return tables


def test_logging_changes_no_verdict_of_the_dataplane_matrix(tmp_path):
    on, off = _cluster_tables(tmp_path / "on", True), _cluster_tables(tmp_path / "off", False)
    assert any(ruleset.logs_drops(c.rules) for c in on["node1"].chains.values())
    X.check_supported(on["node1"])
    assert explained.verdicts(on) == explained.verdicts(off)


def test_a_logged_drop_is_decided_by_the_rule_that_sent_it_and_still_dropped():
    open_port = ManagedBridge("vmbr9", Gateway(macs=("02:00:00:00:02:01",)), port_security="off")
    table = X.from_transactions([ruleset.full([open_port], log=True)], ruleset.FAMILY, ruleset.TABLE)
    offer = Fr.Frame(src_mac="bc:24:11:00:01:01", dst_mac=Fr.BROADCAST, src_ip="192.0.2.9",
                     dst_ip="255.255.255.255", proto=17, sport=67, dport=68)
    trace = X.evaluate(table, "prerouting", X.Packet(offer, "vmbr9", "tap101i0"))
    assert trace.verdict == X.DROP
    assert trace.decided_by.comment == "guest acts as DHCP server"
    logged = [s for s in trace.steps if s.chain == "drop-rogue-dhcp"]
    assert logged[0].rule["expr"] == ruleset.log_statements("rogue-dhcp") and logged[0].action is None
    assert logged[1].action == "drop"
    assert "log prefix" in logged[0].to_json()["rule"]


@pytest.mark.parametrize("rule", [JSON_1_0_6, JSON_1_1_3], ids=["1.0.6", "1.1.3"])
def test_the_loaded_log_rule_of_either_release_decides_nothing(rule):
    """The kernel's own JSON listing of the rule (as each release gives it)."""
    objs = [{"table": {"family": "bridge", "name": "pve_microseg"}},
            {"chain": {"family": "bridge", "table": "pve_microseg", "name": "drop-rogue-dhcp",
                       "type": "filter", "hook": "prerouting", "prio": -200, "policy": "accept"}},
            {"rule": rule}, {"rule": dict(rule, expr=[{"drop": None}], comment="dropped")}]
    table = X.from_listing(objs, "bridge", "pve_microseg")
    X.check_supported(table)
    frame = Fr.Frame(src_mac="bc:24:11:00:01:01", dst_mac=Fr.BROADCAST)
    trace = X.evaluate(table, "prerouting", X.Packet(frame, "vmbr9", "tap101i0"))
    assert trace.verdict == X.DROP and [s.action for s in trace.steps] == [None, "drop"]
    assert trace.decided_by.comment == "dropped"


@pytest.mark.parametrize("limit", [
    {"meter": {"name": "m", "size": 1, "key": {"meta": {"key": "iifname"}},
               "stmt": {"limit": {"rate": 1, "per": "minute"}}}},
    {"set": {"op": "add", "elem": {"meta": {"key": "iifname"}}, "set": "@m",
             "stmt": [{"limit": {"rate": 1, "per": "minute"}}]}},
])
def test_a_rate_limit_that_gates_a_verdict_is_refused(limit):
    """Over its limit the rule would not drop: the evaluator cannot tell, so it refuses."""
    table = X.from_transactions([ruleset.full([BRIDGE], log=True)], ruleset.FAMILY, ruleset.TABLE)
    table.chains["guest-pre"].rules.insert(0, {"chain": "guest-pre", "expr": [limit, {"drop": None}]})
    with pytest.raises(UnsupportedRule, match="rate limit in a rule with a verdict"):
        X.check_supported(table)


# ------------------------------------------------------------------ the flows

CONFIG = "bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n"


class _Quiet:
    def write(self, s):
        pass

    def flush(self):
        pass


def _log():
    return Log(stream=_Quiet(), use_syslog=False)


def _node(fake_node, log):
    fake_node.running_config()
    fake_node.write_config(("log: on\n" if log else "") + CONFIG)
    fake_node.add_bridge("vnet0")
    return fake_node


def _logs(transaction):
    return ruleset.logs_drops([c["add"]["rule"] for c in transaction["nftables"] if "rule" in c.get("add", {})])


def test_apply_loads_the_log_rules_and_records_them(fake_node):
    n, nft = _node(fake_node, True), FakeNft()
    result = reconcile.apply(n.paths, nft)
    assert _logs(nft.transactions[-1]) and result.data["log"] is True
    assert state.loaded_log(n.paths)
    n.write_config(CONFIG)
    reconcile.apply(n.paths, nft)
    assert not _logs(nft.transactions[-1]) and not state.loaded_log(n.paths)


def test_if_down_keeps_the_drop_chains_logging(fake_node):
    """remove_bridge refills the drop chains: it must keep what is loaded
    (the hook does not read the configuration)."""
    n, nft = _node(fake_node, True), FakeNft()
    n.write_config("log: on\n" + CONFIG + "  vnet1:\n    gateway-mac: 00:00:5e:00:01:65\n    gateway-ip: 10.102.0.1\n")
    reconcile.hook_up(n.paths, "vnet0", nft, _log())
    assert _logs(nft.transactions[-1])
    reconcile.hook_down(n.paths, "vnet0", nft, _log())
    assert len(nft.transactions) == 2 and _logs(nft.transactions[-1])


def test_the_hook_applies_a_changed_log_setting_alone(fake_node):
    n, nft = _node(fake_node, False), FakeNft()
    reconcile.hook_up(n.paths, "vnet0", nft, _log())
    assert len(nft.transactions) == 1 and not _logs(nft.transactions[0])
    n.write_config("log: on\n" + CONFIG)                    # nothing else changed
    reconcile.hook_up(n.paths, "vnet0", nft, _log())
    assert len(nft.transactions) == 2 and _logs(nft.transactions[-1]) and state.loaded_log(n.paths)
    reconcile.hook_up(n.paths, "vnet0", nft, _log())
    assert len(nft.transactions) == 2                       # settled: nothing to do
    n.write_config(CONFIG)
    reconcile.hook_up(n.paths, "vnet0", nft, _log())
    assert len(nft.transactions) == 3 and not _logs(nft.transactions[-1]) and not state.loaded_log(n.paths)


def test_boot_from_the_cache_keeps_logging(fake_node):
    n, nft = _node(fake_node, True), FakeNft()
    reconcile.apply(n.paths, FakeNft())
    assert json.loads(n.paths.cache.read_text())["log"] is True
    import shutil
    shutil.rmtree(n.paths.run_dir)                          # a reboot empties /run
    n.mount_pmxcfs(False)
    reconcile.hook_up(n.paths, "vnet0", nft, _log())
    assert _logs(nft.transactions[0])


def test_a_cache_of_log_off_reads_as_before(fake_node):
    n = _node(fake_node, False)
    reconcile.apply(n.paths, FakeNft())
    assert "log" not in json.loads(n.paths.cache.read_text())
    assert state.load_cache(n.paths)[2] is False


def test_teardown_forgets_the_log_record(fake_node):
    n = _node(fake_node, True)
    reconcile.apply(n.paths, FakeNft())
    reconcile.teardown(n.paths, FakeNft())
    assert not n.paths.drop_log.exists()


def test_show_and_status_say_when_drops_are_logged(fake_node):
    n = _node(fake_node, True)
    data = reconcile.show(n.paths).data
    assert data["log"] is True
    assert any("journalctl -k --grep pve-microseg" in line for line in render.show(data))
    data["log"] = False
    assert not any("journalctl" in line for line in render.show(data))


def test_the_drop_log_golden_scenario_logs_and_the_others_do_not():
    for scenario in golden.SCENARIOS:
        text = (Path(golden.HERE) / f"{scenario}.nft").read_text()
        assert ("log prefix" in text) is (scenario == "drop-log"), scenario
    text = golden.expected("drop-log")
    for cls in ruleset.DROP_CLASSES:
        assert text.count(f'log prefix "pve-microseg {cls}: "') == 1


def test_status_says_when_drops_are_logged(tmp_path):
    from pvesim import Cluster
    from pve_microseg.flows import status
    c = Cluster(tmp_path)
    ssh = tmp_path / "ssh"
    ssh.write_text("#!/bin/sh\necho 'ssh: connect to host: No route to host' >&2\nexit 255\n")
    ssh.chmod(0o755)
    c.env["PVE_MICROSEG_SSH"] = str(ssh)
    yaml = "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n    gateway-ip: 10.100.0.1\n"
    for log, said in ((True, True), (False, False)):
        c.write("microseg.yaml", ("log: on\n" if log else "") + yaml)
        data = status.cluster(Paths.from_env(c.env), timeout=2).data
        assert data["drop-log"] is log
        assert any("journalctl -k --grep pve-microseg" in line for line in render.status(data)) is said


# ------------------------------------------------------------------ the kernel here

KERNEL_SCRIPT = r'''
import json, re, socket, struct, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import nftables
from pve_microseg.policy import nftsyntax, ruleset as R

def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, capture_output=True)

sh("ip link add br0 type bridge && ip link set br0 up")
for i in (0, 1):
    sh(f"ip link add tap10{i + 1}i0 type veth peer name peer{i} && ip link set tap10{i + 1}i0 master br0 up "
       f"&& ip link set peer{i} up")

def transaction(log):
    t = R._t
    drops = [R.drop_chain(c) for c in R.DROP_CLASSES]
    cmds = [{"add": {"table": {"family": R.FAMILY, "name": R.TABLE}}},
            {"add": {"chain": t(name="prerouting", type="filter", hook="prerouting", prio=-200, policy="accept")}}]
    cmds += [{"add": {"chain": t(name=n)}} for n in drops]
    cmds += [{"flush": {"chain": t(name=n)}} for n in ["prerouting", *drops]]
    cmds += R._drop_chain_rules(log)
    cmds.append(R._rule("prerouting", [R._match(R._meta("iifname"), "tap101i0"),
                                       R._match(R._payload("udp", "sport"), 67)] + R._drop("rogue-dhcp"), "test"))
    return {"nftables": cmds}

nft = nftables.Nftables()
nft.set_json_output(True)
for log in (True, True, False, True):       # every transaction re-adds the chains' rules; toggled and back
    rc, _, err = nft.json_cmd(transaction(log))
    assert rc == 0, err
nft.set_json_output(False)
listing = nft.cmd("list table bridge pve_microseg")[1]
version = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout
as_sets = bool(re.search(r"v1\.[1-9]", version))
rendered = nftsyntax.table([transaction(True)], R.FAMILY, R.TABLE, meters_as_sets=as_sets)

frame = (b"\xff" * 6 + bytes.fromhex("bc2411000101") + b"\x08\x00"
         + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 8, 1, 0, 64, 17, 0, socket.inet_aton("10.0.0.101"),
                       socket.inet_aton("255.255.255.255"))
         + struct.pack("!HHHH", 67, 68, 16, 0) + b"pve-microseg-t1")
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
rx.bind(("peer1", 0))
rx.settimeout(0.3)
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind(("peer0", 0))
for _ in range(5):
    tx.send(frame)
received = 0
try:
    while True:
        received += b"pve-microseg-t1" in rx.recv(2000)
except socket.timeout:
    pass
meters = nft.cmd("list set bridge pve_microseg drops-rogue-dhcp" if as_sets else "list meters")[1]
logs = nft.cmd("list set bridge pve_microseg log-rogue-dhcp" if as_sets else "list meters")[1]
print(json.dumps({"version": version.strip(), "listing": re.sub(r"counter packets \d+ bytes \d+",
                                                               "counter packets 0 bytes 0", listing),
                  "rendered": rendered, "received": received, "meters": meters, "logs": logs}))
'''


def _in_a_network_namespace(script, *args):
    import os
    import shutil
    import subprocess
    import sys
    if shutil.which("unshare") is None or shutil.which("ip") is None or shutil.which("nft") is None:
        unavailable("unshare, ip and nft are needed")
    try:
        import nftables  # noqa: F401
    except ImportError:
        unavailable("python3-nftables is not installed")
    # root: a network namespace of its own (a chroot refuses user namespaces); else a user's
    cmd = ["unshare", "-n" if os.geteuid() == 0 else "-rn", sys.executable, "-c", script, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and ("Operation not permitted" in r.stderr or "Operation not supported" in r.stderr):
        unavailable(f"no network namespace with a bridge here: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_the_installed_nftables_loads_the_log_rules_and_the_kernel_still_drops():
    """On this kernel, through the installed libnftables (1.0.6 on Debian 12,
    1.1.3 in the trixie chroot of `make unit-trixie`): the drop chains with
    the log rules load, load again, turn off and on; the listing is what
    nftsyntax renders for that release; five rogue DHCP OFFERs from one port
    are all dropped and counted, and the port has its log limit.  (The log
    line itself needs net.netfilter.nf_log_all_netns in a namespace: the
    QEMU tier reads it, tests/dataplane/droplog.py.)"""
    from conftest import ROOT
    got = _in_a_network_namespace(KERNEL_SCRIPT, str(ROOT / "lib"))
    assert got["listing"] == got["rendered"], got["version"]
    assert got["received"] == 0
    assert '"tap101i0" counter packets 5 bytes' in got["meters"]
    assert '"tap101i0" limit rate 1/minute burst 1 packets' in got["logs"]
