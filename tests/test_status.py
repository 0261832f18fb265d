"""pve-microseg status on the simulated cluster: bridges on every node, guests, exit status."""

import json

import pytest

from pvesim import HOOKSCRIPT, Cluster
from pve_microseg.entry import render
from pve_microseg.flows import status
from pve_microseg.edges.paths import Paths

OURS = f"local:snippets/{HOOKSCRIPT.name}"
YAML = "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n    gateway-ip: 10.100.0.1\n"
MAC = "BC:24:11:2C:69:EC"


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.write("microseg.yaml", YAML)
    (c.sys_class_net / "web" / "bridge").mkdir(parents=True)
    # other nodes answer through a stand-in ssh: canned JSON per node, or silence
    answers = tmp_path / "answers"
    answers.mkdir()
    ssh = tmp_path / "ssh"
    ssh.write_text(f"""#!/bin/sh
for a; do case "$a" in root@*) node=${{a#root@}};; esac; done
[ -e {answers}/$node.hang ] && sleep 30
[ -e {answers}/$node.json ] || {{ echo "ssh: connect to host $node port 22: No route to host" >&2; exit 255; }}
cat {answers}/$node.json
""")
    ssh.chmod(0o755)
    c.env["PVE_MICROSEG_SSH"] = str(ssh)
    c.answers = answers
    return c


def answer(cluster, node, present=True, rules=True):
    (cluster.answers / f"{node}.json").write_text(json.dumps(
        {"node": node, "source": "test", "bridges": {"web": {"present": present, "rules": rules}}}))


def mark_loaded(cluster):
    paths = Paths.from_env(cluster.env)
    paths.applied_dir.mkdir(parents=True, exist_ok=True)
    (paths.applied_dir / "web").write_text(json.dumps({"bridge": "web", "gateway-mac": ["02:00:00:00:01:01"],
                                                        "gateway-ip": ["10.100.0.1"]}))


def protected_guest(cluster):
    cluster.install_hookscript()
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    assert cluster.qm("start", 101).returncode == 0


def run(cluster, *argv):
    return cluster.cli("status", *argv)


def test_everything_protected(cluster):
    mark_loaded(cluster)
    answer(cluster, "pve2")
    protected_guest(cluster)
    data = status.cluster(Paths.from_env(cluster.env), timeout=2).data
    assert data["problems"] == [], data["problems"]
    assert data["bridges"][0]["nodes"] == {"pve1": "protected", "pve2": "protected"}
    assert data["guests"][0]["vmid"] == 101


def test_each_gap_is_a_problem_and_exit_9(cluster):
    answer(cluster, "pve2", present=True, rules=False)
    cluster.add_vm(102, {0: "virtio=BC:24:11:00:00:02,bridge=web"}, hookscript=False)
    rc, out = run(cluster)
    assert rc == 9
    for words in ("web: present on pve1 without L2 rules", "web: present on pve2 without L2 rules",
                  "guest 102: hookscript not attached", "guest 102: net0 on web has firewall=0",
                  "guest 102: guest firewall off", "guest 102: ipfilter-net0 missing"):
        assert f"PROBLEM {words}" in out, out


def test_unreachable_and_silent_nodes_are_reported(cluster):
    mark_loaded(cluster)
    rc, out = run(cluster, "--output-format", "json")
    data = json.loads(out)
    assert rc == 9 and data["nodes"]["pve2"].startswith("error: ssh: connect to host pve2")
    assert data["bridges"][0]["nodes"]["pve2"] == "unknown"
    answer(cluster, "pve2")
    (cluster.answers / "pve2.hang").write_text("")
    rc, out = run(cluster, "--timeout", "1", "--output-format", "json")
    assert rc == 9 and "no answer within 1 s" in json.loads(out)["nodes"]["pve2"]


def test_stale_set_is_found(cluster):
    mark_loaded(cluster)
    answer(cluster, "pve2")
    protected_guest(cluster)
    path = cluster.guest_path(101)
    path.write_text(path.read_text().replace("ip=10.100.0.5/24", "ip=10.100.0.6/24"))
    rc, out = run(cluster)
    assert rc == 9 and "ipfilter-net0 differs from the known addresses" in out and "guest sync 101" in out


def test_a_set_without_another_guests_address_is_not_reported_as_differing(cluster):
    """Guest 102's config copies the address microseg.yaml gives 101:
    pre-start leaves it out of 102's set, and status plans the set the same way (with every guest's
    claims), so the set is not reported stale."""
    cluster.write("microseg.yaml", YAML + "hookscript:\n  strict: false\n"
                                          "guests:\n  101:\n    net0: [10.100.0.5]\n")
    mark_loaded(cluster)
    answer(cluster, "pve2")
    protected_guest(cluster)
    cluster.add_vm(102, {0: "virtio=BC:24:11:00:00:02,bridge=web,firewall=1"},
                   {0: "ip=10.100.0.5/24,ip6=fd00::102/64"})
    assert cluster.qm("start", 102).returncode == 0
    assert "10.100.0.5" not in (cluster.pve / "firewall/102.fw").read_text()
    data = status.cluster(Paths.from_env(cluster.env), timeout=2).data
    assert not [p for p in data["problems"] if "differs" in p], data["problems"]


def test_firewall_prerequisites_and_vnet_firewall_are_checked(cluster):
    mark_loaded(cluster)
    answer(cluster, "pve2")
    protected_guest(cluster)
    cluster.write("sdn/.running-config", json.dumps({"version": 1, "vnets": {"ids": {"web": {"zone": "z"},
                                                                                    "db": {"zone": "z"}}},
                                                     "subnets": {"ids": {}}}))
    cluster.write("firewall/cluster.fw", "[OPTIONS]\n\nenable: 0\n")
    cluster.write(".members", json.dumps({"nodename": "pve1", "nodelist": {
        "pve1": {"id": 1, "online": 1, "ip": "192.0.2.1"}, "pve2": {"id": 2, "online": 1, "ip": "192.0.2.2"}}}))
    log = cluster.root / "ssh.args"
    ssh = cluster.root / "ssh"
    ssh.write_text(ssh.read_text().replace("#!/bin/sh\n", f'#!/bin/sh\necho "$*" >> {log}\n')
                   .replace("root@*) node=${a#root@}", "HostKeyAlias=*) node=${a#HostKeyAlias=}"))
    data = status.cluster(Paths.from_env(cluster.env), timeout=2).data
    problems = "\n".join(data["problems"])
    assert "the datacenter firewall is off" in problems
    assert "pve1: nftables: 1 is not set" in problems and "pve2: nftables: 1 is not set" in problems
    assert "web: VNet firewall not on with policy_forward DROP" in problems
    assert "-e none -o BatchMode=yes -o HostKeyAlias=pve2" in log.read_text()
    assert "root@192.0.2.2" in log.read_text()                   # the address pmxcfs knows, like pvesh
    assert "UserKnownHostsFile" not in log.read_text()           # before PVE 8.1: the global file
    # PVE 8.1+: each node's own known_hosts on pmxcfs, and no other (pve-cluster SSHInfo.pm)
    cluster.write("nodes/pve2/ssh_known_hosts", "pve2 ssh-ed25519 AAAA...\n")
    status.cluster(Paths.from_env(cluster.env), timeout=2)
    known = cluster.pve / "nodes/pve2/ssh_known_hosts"
    assert f"-o UserKnownHostsFile={known} -o GlobalKnownHostsFile=none" in log.read_text().splitlines()[-1]
    assert data["unmanaged-vnets"] == ["db"]


def test_local_nftables_unreadable_is_unknown(cluster):
    from pve_microseg.model.errors import NftablesUnavailable

    class Broken:
        def list_table(self, *a):
            raise NftablesUnavailable("python3-nftables is not installed")
    answer(cluster, "pve2")
    data = status.cluster(Paths.from_env(cluster.env), nft_factory=Broken, timeout=2).data
    assert data["nodes"]["pve1"].startswith("error: cannot read nftables")
    assert data["bridges"][0]["nodes"]["pve1"] == "unknown"


def test_teardown_dry_run_names_the_guests_that_lose_isolation(cluster):
    protected_guest(cluster)
    cluster.add_vm(102, {0: "virtio=BC:24:11:00:00:02,bridge=web,firewall=1"}, node="pve2", hookscript=False)
    rc, out = cluster.cli("teardown", "--dry-run", "--output-format", "json")
    data = json.loads(out)
    assert rc == 0 and data["removed"] is False
    assert data["guests-without-l2-isolation"] == [{"vmid": 101, "type": "qemu", "nics": ["net0@web"]}]


# ------------------------------------------------------------------ proxmox-firewall and ipfilter

def cluster_status(cluster):
    """(exit status, data, text) of `status` with this node's rules as the hooks recorded them."""
    result = status.cluster(Paths.from_env(cluster.env), timeout=2)
    return result.exit, result.data, "\n".join(render.status(result.data))


def nftables_on(cluster, *nodes):
    for n in nodes:
        cluster.write(f"nodes/{n}/host.fw", "[OPTIONS]\n\nnftables: 1\n")


def test_local_answer_says_which_proxmox_firewall(cluster):
    rc, out = run(cluster, "--local", "--output-format", "json")
    assert json.loads(out)["proxmox-firewall"] == "1.2.3"
    cluster.proxmox_firewall("1.1.2")
    rc, out = run(cluster, "--local")
    assert "proxmox-firewall: 1.1.2" in out.splitlines()
    cluster.proxmox_firewall(None)                           # removed, its configuration kept
    assert json.loads(run(cluster, "--local", "--output-format", "json")[1])["proxmox-firewall"] == "not installed"
    cluster.dpkg_status.unlink()
    pfw = json.loads(run(cluster, "--local", "--output-format", "json")[1])["proxmox-firewall"]
    assert pfw.startswith("unknown: ") and "not found" in pfw


def test_old_proxmox_firewall_under_nftables_is_a_problem_here(cluster):
    mark_loaded(cluster)
    answer(cluster, "pve2")
    protected_guest(cluster)
    nftables_on(cluster, "pve1")
    cluster.proxmox_firewall("1.1.2")                        # PVE 9 before "fix #6336"
    rc, data, out = cluster_status(cluster)
    assert rc == 9
    problem = next(l for l in out.splitlines() if l.startswith("PROBLEM pve1: "))
    assert "proxmox-firewall 1.1.2 is older than 1.2.0" in problem and "IP part of ipfilter does not filter" in problem
    assert "spoofed source address" in problem and "upgrade proxmox-firewall to 1.2.0 or later" in problem
    assert "proxmox-firewall: pve1 1.1.2 (nftables: 1), pve2 unknown" in out.splitlines()
    assert json.loads(json.dumps(data))["firewall-backends"] == {
        "pve1": {"nftables": True, "proxmox-firewall": "1.1.2"},
        "pve2": {"nftables": False, "proxmox-firewall": "unknown"}}
    assert [p for p in data["problems"] if "proxmox-firewall" in p] == [problem[len("PROBLEM "):]]
    cluster.proxmox_firewall("1.2.0")                        # the first with the fix
    rc, data, out = cluster_status(cluster)
    assert rc == 0 and "PROBLEM" not in out, out
    # the same version without nftables: 1: pve-firewall (iptables) filters the IP part
    cluster.proxmox_firewall("0.7.1")
    cluster.write("nodes/pve1/host.fw", "[OPTIONS]\n\nnftables: 0\n")
    rc, data, out = cluster_status(cluster)
    assert rc == 0 and "proxmox-firewall: pve1 0.7.1, pve2 unknown" in out.splitlines()


def test_other_nodes_report_their_proxmox_firewall(cluster):
    mark_loaded(cluster)
    protected_guest(cluster)
    nftables_on(cluster, "pve1", "pve2")
    # pve2's answer as `status --local --output-format json` gives it there
    local_answer = json.loads(json.dumps(status.local(Paths.from_env(cluster.env)).data))
    assert local_answer["proxmox-firewall"] == "1.2.3"
    remote = dict(local_answer, node="pve2", **{"proxmox-firewall": "0.7.1"})
    (cluster.answers / "pve2.json").write_text(json.dumps(remote))
    rc, data, out = cluster_status(cluster)
    assert rc == 9 and data["firewall-backends"]["pve2"] == {"nftables": True, "proxmox-firewall": "0.7.1"}
    assert [p for p in data["problems"] if "proxmox-firewall" in p] == [
        next(p for p in data["problems"] if p.startswith("pve2: proxmox-firewall 0.7.1 is older than 1.2.0"))]
    remote["proxmox-firewall"] = "1.2.1~bpo12+1"
    (cluster.answers / "pve2.json").write_text(json.dumps(remote))
    rc, data, out = cluster_status(cluster)
    assert rc == 0 and "proxmox-firewall: pve1 1.2.3 (nftables: 1), pve2 1.2.1~bpo12+1 (nftables: 1)" in out
    # a node running an older pve-microseg does not say: unknown, and no problem of its own
    del remote["proxmox-firewall"]
    (cluster.answers / "pve2.json").write_text(json.dumps(remote))
    rc, data, out = cluster_status(cluster)
    assert rc == 0 and "pve2 unknown (nftables: 1)" in out, out


def test_nftables_without_proxmox_firewall_matters_for_vnets(cluster):
    mark_loaded(cluster)
    answer(cluster, "pve2")
    protected_guest(cluster)
    nftables_on(cluster, "pve1")
    cluster.proxmox_firewall(None)
    rc, data, out = cluster_status(cluster)
    assert rc == 0 and "proxmox-firewall: pve1 not installed (nftables: 1)" in out, out   # no VNet managed
    cluster.write("sdn/.running-config", json.dumps({"version": 1, "vnets": {"ids": {"web": {"zone": "z"}}},
                                                     "subnets": {"ids": {}}}))       # web is a VNet now
    rc, data, out = cluster_status(cluster)
    assert rc == 9 and any(p.startswith("pve1: nftables: 1 is set in its host.fw, but proxmox-firewall is "
                                        "not installed") for p in data["problems"]), data["problems"]


class TableNft:
    """This node's kernel table as libnftables lists it: `web`'s chains, and
    guest-bind with or without the rule only nftables >= 1.1 loads."""

    def __init__(self, nd):
        self.nd = nd

    def __call__(self, dry_run=False):
        return self

    def list_table(self, family, table):
        from pve_microseg.policy import ruleset
        objs = [{"chain": {"name": "fwd-web"}}, {"chain": {"name": "pre-web"}}]
        if self.nd:
            objs.append({"rule": {"chain": ruleset.GUEST_BIND_CHAIN, "comment": ruleset.ND_TARGET_COMMENT}})
        return objs

    def set_elements(self, family, table, name):
        return []

    def list_meters(self, family, table):
        return []


def _elems(counts):
    return [{"elem": {"val": port, "counter": {"packets": p, "bytes": b}}} for port, (p, b) in counts.items()]


class DropsNft(TableNft):
    """A table with drop counters: nftables 1.1 lists a meter as a set of the
    table, 1.0.6 only under `list meters` (both read)."""

    def __init__(self, nd=True):
        super().__init__(nd)

    def list_table(self, family, table):
        return super().list_table(family, table) + [
            {"set": {"family": "bridge", "table": "pve_microseg", "name": "drops-mac-binding", "type": "ifname",
                     "elem": _elems({"tap101i0": (7, 420), "tap102i1": (2, 128)})}},
            {"set": {"family": "bridge", "table": "pve_microseg", "name": "bind-any-mac", "elem": ["tap1i0"]}}]

    def list_meters(self, family, table):
        return [{"meter": {"family": "bridge", "table": "pve_microseg", "name": "drops-guest-to-guest",
                           "elem": _elems({"tap101i0": (40, 2400), "eth0": (3, 180)})}},
                {"meter": {"family": "inet", "table": "other", "name": "drops-guest-to-guest",
                           "elem": _elems({"tap9i0": (99, 99)})}}]


def test_each_node_says_whether_nd_targets_are_bound(cluster):
    """nftables 1.0.6 (Debian 12) cannot bind a neighbour advertisement's
    target to the port: status says so per node, from the kernel's table,
    as a note (nothing pve-microseg can change there)."""
    for nd in (True, False):
        local_answer = status.local(Paths.from_env(cluster.env), nft_factory=TableNft(nd)).data
        assert local_answer["nd-target-bound"] is nd
        assert ("target bound to the port" if nd else "target NOT bound") in "\n".join(render.status_local(local_answer))
    assert "nd-target-bound" not in status.local(Paths.from_env(cluster.env)).data   # markers only: cannot tell
    remote = dict(status.local(Paths.from_env(cluster.env), nft_factory=TableNft(False)).data, node="pve2")
    (cluster.answers / "pve2.json").write_text(json.dumps(remote))
    data = status.cluster(Paths.from_env(cluster.env), nft_factory=TableNft(True), timeout=2).data
    assert data["nd-target-bound"] == {"pve1": True, "pve2": False}
    text = "\n".join(render.status(data))
    assert "note: on pve2 (nftables < 1.1, Debian 12) a neighbour advertisement's target is not bound" in text
    assert "on pve1" not in text


# another node's answer is believed only in exactly the expected shape (parse/nodeanswer.py)
ODD_ANSWERS = [
    '{"bridges": {"web": {}}}',
    '{"bridges": {"web": {"present": "no", "rules": "no"}}}',      # strings are not booleans
    '{"bridges": {"web": {"present": 1, "rules": 1}}}',
    '{"bridges": {"web": {"present": true, "rules": null}}}',
    '{"bridges": {"web": []}}',
    '{"bridges": []}',
    '{"bridges": null}',
    '{"bridges": {}}',                                              # silent about a managed bridge
    '{"node": "pve2"}',
    '{"bridges": {"web": {"present": true, "rules": true}}, "unbound-ports": "tap101i0"}',
    '{"bridges": {"web": {"present": true, "rules": true}}, "unbound-ports": [{"port": 101}]}',
    '{"bridges": {"web": {"present": true, "rules": true}}, "unbound-ports": [["tap101i0"]]}',
    '{"bridges": {"web": {"present": true, "rules": true}}, "proxmox-firewall": 1.2}',
    '{"bridges": {"web": {"present": true, "rules": true}}, "nd-target-bound": "yes"}',
    '{"error": {"nested": 1}}',
    '{"bridges": {"web": {"present": true, "rules": ' + "[" * 900 + "]" * 900 + '}}}',
    "[" * 30000 + "]" * 30000,
    '[]', 'null', '3', '"protected"', 'true',
]


@pytest.mark.parametrize("text", ODD_ANSWERS, ids=lambda t: t[:60])
def test_an_answer_of_another_shape_is_unknown_and_unprotected(cluster, text):
    mark_loaded(cluster)
    protected_guest(cluster)
    (cluster.answers / "pve2.json").write_text(text)
    result = status.cluster(Paths.from_env(cluster.env), timeout=5)
    data = result.data
    assert result.exit == 9                                 # fail closed: something is unprotected
    assert data["bridges"][0]["nodes"] == {"pve1": "protected", "pve2": "unknown"}
    assert data["nodes"]["pve2"].startswith("error: ")
    assert any(p.startswith("pve2: ") for p in data["problems"]), data["problems"]


def test_a_well_formed_answer_is_believed(cluster):
    mark_loaded(cluster)
    protected_guest(cluster)
    (cluster.answers / "pve2.json").write_text(json.dumps(
        {"node": "pve2", "source": "nftables", "bridges": {"web": {"present": True, "rules": True}, "other": {
            "present": False, "rules": False}}, "unbound-ports": [], "proxmox-firewall": "1.2.3",
         "nd-target-bound": True, "something-newer": {"x": 1}}))
    result = status.cluster(Paths.from_env(cluster.env), timeout=5)
    data = result.data
    assert result.exit == 0, data["problems"]
    assert data["bridges"][0]["nodes"] == {"pve1": "protected", "pve2": "protected"}
    assert data["nd-target-bound"] == {"pve2": True}


def test_nodeanswer_names_what_does_not_fit():
    from pve_microseg.parse import nodeanswer
    bad = nodeanswer.parse({"bridges": {"web": {"present": "no", "rules": True}}}, {"web"})
    assert bad == {"error": 'unknown answer (bridge web: "present" is "no", not true or false): '
                            "its L2 rules count as missing"}
    assert nodeanswer.parse({"error": "no answer within 5 s"}) == {"error": "no answer within 5 s"}
    assert "says nothing about db, web" in nodeanswer.parse({"bridges": {}}, {"web", "db"})["error"]


# ------------------------------------------------------------ status --drops

def test_local_answer_carries_the_drops_per_port_and_class(cluster):
    (cluster.sys_class_net / "web" / "brif" / "tap101i0").mkdir(parents=True)
    data = status.local(Paths.from_env(cluster.env), nft_factory=DropsNft()).data
    assert data["drops"] == [
        {"vmid": 101, "nic": "net0", "port": "tap101i0", "bridge": "web", "class": "guest-to-guest",
         "packets": 40, "bytes": 2400},
        {"vmid": 101, "nic": "net0", "port": "tap101i0", "bridge": "web", "class": "mac-binding",
         "packets": 7, "bytes": 420},
        {"vmid": None, "nic": None, "port": "eth0", "bridge": None, "class": "guest-to-guest",
         "packets": 3, "bytes": 180},
        {"vmid": 102, "nic": "net1", "port": "tap102i1", "bridge": None, "class": "mac-binding",
         "packets": 2, "bytes": 128}]
    assert "drops" not in status.local(Paths.from_env(cluster.env)).data     # markers only: no counters


def test_status_drops_sorts_every_nodes_offenders_first(cluster):
    remote = dict(status.local(Paths.from_env(cluster.env), nft_factory=TableNft(False)).data, node="pve2")
    remote["drops"] = [{"vmid": 201, "nic": "net0", "port": "tap201i0", "bridge": "web", "class": "rogue-ra",
                        "packets": 9, "bytes": 900}]
    (cluster.answers / "pve2.json").write_text(json.dumps(remote))
    data = status.cluster(Paths.from_env(cluster.env), nft_factory=DropsNft(), timeout=2, with_drops=True).data
    assert [(r["node"], r["port"], r["class"], r["packets"]) for r in data["drops"]] == [
        ("pve1", "tap101i0", "guest-to-guest", 40), ("pve2", "tap201i0", "rogue-ra", 9),
        ("pve1", "tap101i0", "mac-binding", 7), ("pve1", "eth0", "guest-to-guest", 3),
        ("pve1", "tap102i1", "mac-binding", 2)]
    assert data["drops-unknown"] == []
    text = render.status(data)
    i = text.index("drops (per guest port and class, since the rules were loaded):")
    assert text[i + 1] == "  pve1: 101/net0 tap101i0 on ?: guest-to-guest: 40 packets, 2400 bytes"
    assert text[i + 2] == "  pve2: 201/net0 tap201i0 on web: rogue-ra: 9 packets, 900 bytes"
    assert "  pve1: (not a guest) eth0 on ?: guest-to-guest: 3 packets, 180 bytes" in text
    # without --drops: not asked, not shown
    plain = status.cluster(Paths.from_env(cluster.env), nft_factory=DropsNft(), timeout=2).data
    assert "drops" not in plain and not any(line.startswith("drops") for line in render.status(plain))


def test_a_node_that_cannot_say_what_it_dropped_is_named(cluster):
    answer(cluster, "pve2")                     # an older version: no "drops"
    data = status.cluster(Paths.from_env(cluster.env), nft_factory=DropsNft(), timeout=2, with_drops=True).data
    assert data["drops-unknown"] == ["pve2"] and {r["node"] for r in data["drops"]} == {"pve1"}
    assert "  not known from: pve2" in render.status(data)


def test_status_drops_on_the_command_line(cluster):
    answer(cluster, "pve2")
    rc, out = run(cluster, "--drops", "--output-format", "json")
    data = json.loads(out)
    # this host has no table of ours (or no libnftables): nothing dropped here, pve2 cannot say
    assert data["drops"] == [] and "pve2" in data["drops-unknown"]
    rc, out = run(cluster, "--drops")
    assert "drops (per guest port and class, since the rules were loaded):\n  none" in out


DROP_ROW = {"vmid": 101, "nic": "net0", "port": "tap101i0", "bridge": "web", "class": "rogue-ra",
            "packets": 1, "bytes": 60}


@pytest.mark.parametrize("change", [
    {"packets": -1}, {"packets": True}, {"bytes": 1.5}, {"bytes": "60"}, {"vmid": "101"}, {"vmid": False},
    {"port": None}, {"class": 3}, {"nic": 0}, {"bridge": ["web"]}])
def test_a_drop_row_of_another_shape_makes_the_answer_unknown(change):
    from pve_microseg.parse import nodeanswer
    good = {"node": "pve2", "bridges": {"web": {"present": True, "rules": True}}, "drops": [DROP_ROW]}
    assert nodeanswer.parse(good, ["web"])["drops"] == [DROP_ROW]
    assert nodeanswer.parse(dict(good, drops=[dict(DROP_ROW, vmid=None, nic=None, bridge=None)]), ["web"])["drops"]
    odd = dict(good, drops=[dict(DROP_ROW, **change)])
    assert nodeanswer.parse(odd, ["web"])["error"].startswith(nodeanswer.UNKNOWN)
    missing = dict(good, drops=[{k: v for k, v in DROP_ROW.items() if k != next(iter(change))}])
    assert nodeanswer.parse(missing, ["web"])["error"].startswith(nodeanswer.UNKNOWN)
    assert nodeanswer.parse(dict(good, drops={"tap101i0": 1}), ["web"])["error"].startswith(nodeanswer.UNKNOWN)
