"""pve-microseg port bind|unbind: one port's binding replaced in the kernel, as udev runs it."""

import io
import json

import pytest

from pve_microseg.edges import state
from pve_microseg.entry import cli
from pve_microseg.flows import ports
from pve_microseg.model.errors import MicrosegError

CONFIG = "bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n"


class KernelSets:
    """A recording nftables with bind-* sets, as libnftables lists them."""

    def __init__(self, sets=None):
        self.sets = sets
        self.transactions = []

    def __call__(self, dry_run=False):
        self.dry_run = dry_run
        return self

    def set_elements(self, family, table, name):
        return None if self.sets is None else list(self.sets.get(name, []))

    def knows_nd_target(self):
        return False

    def run(self, transaction):
        self.transactions.append(transaction)


@pytest.fixture
def node(fake_node):
    fake_node.running_config()
    fake_node.write_config(CONFIG)
    pve = fake_node.paths.pve_dir
    conf = pve / "nodes/pve1/qemu-server/101.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("net0: virtio=BC:24:11:00:00:01,bridge=vnet0\nipconfig0: ip=10.101.0.5/16\n")
    (pve / ".vmlist").write_text(json.dumps({"ids": {"101": {"node": "pve1", "type": "qemu"}}}))
    fake_node.env["PVE_MICROSEG_NODE"] = "pve1"
    return fake_node


def test_bind_replaces_exactly_the_ports_elements(node):
    stale = {"concat": ["tap101i0", "bc:24:11:00:00:99"]}
    other = {"concat": ["tap102i0", "bc:24:11:00:00:02"]}
    nft = KernelSets({"bind-mac": [stale, other], "bind-ip4": [], "bind-ip6": []})
    r = ports.change(node.paths, nft, "bind", ["tap101i0"], node.env)
    (t,) = nft.transactions
    cmds = t["nftables"]
    assert {"delete": {"element": {"family": "bridge", "table": "pve_microseg", "name": "bind-mac",
                                   "elem": [stale]}}} in cmds
    added = {c["add"]["element"]["name"]: c["add"]["element"]["elem"] for c in cmds if "add" in c}
    assert added["bind-mac"] == [{"concat": ["tap101i0", "bc:24:11:00:00:01"]}]
    assert added["bind-ip4"] == [{"concat": ["tap101i0", "10.101.0.5"]}]
    assert r.data["ports"][0]["binding"]["mac"] == "bc:24:11:00:00:01"
    assert [b["port"] for b in state.loaded_bindings(node.paths)] == ["tap101i0"]


def test_unbind_removes_and_records(node):
    elem = {"concat": ["tap101i0", "bc:24:11:00:00:01"]}
    nft = KernelSets({"bind-mac": [elem]})
    ports.change(node.paths, nft, "bind", ["tap101i0"], node.env)
    ports.change(node.paths, nft, "unbind", ["tap101i0"], node.env)
    assert nft.transactions[-1] == {"nftables": [{"delete": {"element": {
        "family": "bridge", "table": "pve_microseg", "name": "bind-mac", "elem": [elem]}}}]}
    assert state.loaded_bindings(node.paths) == []


def test_a_port_of_an_unknown_guest_stays_closed_and_says_why(node):
    nft = KernelSets({})
    r = ports.change(node.paths, nft, "bind", ["tap999i0", "vmbr0"], node.env)
    assert [p["binding"] for p in r.data["ports"]] == [None, None]
    assert any("guest 999 is not in the cluster's .vmlist" in w for w in r.warnings)
    assert any("vmbr0 is not a guest port" in w for w in r.warnings)
    assert nft.transactions == [{"nftables": []}]


def test_without_our_table_there_is_nothing_to_bind(node):
    with pytest.raises(MicrosegError, match="is not loaded"):
        ports.change(node.paths, KernelSets(None), "bind", ["tap101i0"], node.env)


def test_cli_port_bind_dry_run_changes_no_state(node, monkeypatch):
    nft = KernelSets({})
    monkeypatch.setattr(cli, "Nft", nft)
    out = io.StringIO()
    assert cli.main(["port", "bind", "tap101i0", "--dry-run"], environ=node.env, out=out) == 0
    assert nft.dry_run is True and "would bind to guest 101 net0 (mac+ip)" in out.getvalue()
    assert state.loaded_bindings(node.paths) is None


def test_status_local_reports_a_guest_port_without_binding(node):
    from pve_microseg.flows import reconcile, status
    node.add_bridge("vnet0")
    (node.paths.sys_class_net / "vnet0" / "brif").mkdir()
    for port in ("tap101i0", "tap102i0", "ln_vnet0"):
        (node.paths.sys_class_net / "vnet0" / "brif" / port).mkdir()
    nft = KernelSets({})
    reconcile.apply(node.paths, lambda dry_run=False: nft, environ=node.env)      # binds tap101i0 (VM 101)
    r = status.local(node.paths)
    assert r.data["unbound-ports"] == [{"port": "tap102i0", "bridge": "vnet0"}] and r.exit == 9
    # a NIC with tag=5 on vnet0 (not VLAN-aware) is on vnet0v5, which carries vnet0's rules
    node.add_bridge("vnet0v5")
    (node.paths.sys_class_net / "vnet0v5" / "brif").mkdir()
    (node.paths.sys_class_net / "vnet0v5" / "brif" / "tap103i1").mkdir()
    assert {"port": "tap103i1", "bridge": "vnet0v5"} in status.local(node.paths).data["unbound-ports"]


def test_binding_takes_a_mac_or_address_away_from_a_stale_port(node):
    """Another port still holding what this binding gives (a guest that changed
    its config since) loses it in the same transaction."""
    stale_mac = {"concat": ["tap102i0", "bc:24:11:00:00:01"]}
    stale_ip = {"concat": ["tap102i0", "10.101.0.5"]}
    keep = {"concat": ["tap102i0", "10.101.0.6"]}
    # the fast path's (port . MAC . address): gone when either part is taken
    stale_fast = {"concat": ["tap102i0", "bc:24:11:00:00:02", "10.101.0.5"]}
    keep_fast = {"concat": ["tap102i0", "bc:24:11:00:00:02", "10.101.0.6"]}
    nft = KernelSets({"bind-mac": [stale_mac], "bind-ip4": [stale_ip, keep], "bind-ip6": [],
                      "bind-fast4": [stale_fast, keep_fast]})
    ports.change(node.paths, nft, "bind", ["tap101i0"], node.env)
    deleted = {c["delete"]["element"]["name"]: c["delete"]["element"]["elem"]
               for c in nft.transactions[0]["nftables"] if "delete" in c}
    assert deleted == {"bind-mac": [stale_mac], "bind-ip4": [stale_ip], "bind-fast4": [stale_fast]}


def test_a_binding_that_cannot_be_decided_closes_the_port(node):
    from pve_microseg.model.errors import RolledBack
    old = {"concat": ["tap101i0", "bc:24:11:00:00:01"]}
    nft = KernelSets({"bind-mac": [old]})
    (node.paths.pve_dir / ".vmlist").write_text("{not json")
    with pytest.raises(RolledBack, match="closed: tap101i0"):
        ports.change(node.paths, nft, "bind", ["tap101i0"], node.env)
    assert nft.transactions == [{"nftables": [{"delete": {"element": {
        "family": "bridge", "table": "pve_microseg", "name": "bind-mac", "elem": [old]}}}]}]
