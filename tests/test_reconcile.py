"""The hooks' and apply's decisions, on a fake node with a recording nftables."""

import json
import os

import pytest

from pve_microseg.flows import reconcile
from pve_microseg.edges import state
from pve_microseg.edges.log import Log
from conftest import unavailable

CONFIG = "bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n"


class Capture:
    def __init__(self):
        self.lines = []

    def write(self, s):
        self.lines.append(s)

    def flush(self):
        pass

    @property
    def text(self):
        return "".join(self.lines)


def log():
    return Log(stream=Capture(), use_syslog=False)


def fill_cache(n):
    """A run that loads rules from /etc/pve keeps them as the last good
    configuration; a reboot then empties /run (tmpfs)."""
    from conftest import FakeNft
    reconcile.apply(n.paths, FakeNft())
    assert n.paths.cache.exists()
    import shutil
    shutil.rmtree(n.paths.run_dir)


def node_with_vnet0(fake_node):
    fake_node.running_config()
    fake_node.write_config(CONFIG)
    fake_node.add_bridge("vnet0")
    return fake_node


def loaded_bridges(transaction):
    return [c["add"]["element"]["elem"][0][0] for c in transaction["nftables"]
            if "add" in c and "element" in c["add"] and c["add"]["element"]["name"] == "forward"]


def test_hook_up_loads_managed_bridge(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log())
    (t,) = fake_nft.transactions
    assert loaded_bridges(t) == ["vnet0"]
    assert set(state.applied(n.paths)) == {"vnet0"}
    assert (n.paths.applied_dir / "vnet0").exists()


def test_hook_up_for_unmanaged_bridge_settles_everything_once(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    reconcile.hook_up(n.paths, "vmbr0", fake_nft, log())
    (t,) = fake_nft.transactions                 # the configured bridges, in one go
    assert loaded_bridges(t) == ["vnet0"]
    assert (n.paths.ignored_dir / "vmbr0").exists()
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log())
    reconcile.hook_up(n.paths, "vmbr0", fake_nft, log())
    assert len(fake_nft.transactions) == 1       # nothing changed: no transaction


def test_markers_carry_the_configuration_stamp(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    os.utime(n.paths.config, ns=(1_700_000_000_000_000_000,) * 2)
    reconcile.hook_up(n.paths, "vmbr0", fake_nft, log())
    stamp = state.config_stamp(n.paths)
    assert stamp == max(p.stat().st_mtime_ns for p in n.paths.stamp_files if p.exists())
    assert (n.paths.applied_dir / "vnet0").stat().st_mtime_ns == stamp
    assert (n.paths.ignored_dir / "vmbr0").stat().st_mtime_ns == stamp


def test_config_change_reloads_only_changed_bridges(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    n.write_config(CONFIG + "  vnet1:\n    gateway-mac: 00:00:5e:00:01:65\n    gateway-ip: 10.102.0.1\n")
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log())
    n.write_config(CONFIG + "  vnet1:\n    gateway-mac: 00:00:5e:00:01:66\n    gateway-ip: 10.102.0.1\n")
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log())
    assert loaded_bridges(fake_nft.transactions[-1]) == ["vnet1"]


def test_hook_up_removes_bridge_no_longer_managed(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log())
    n.write_config("bridges: {}\n")
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log())
    removal = fake_nft.transactions[-1]["nftables"]
    assert {"delete": {"chain": {"family": "bridge", "table": "pve_microseg", "name": "fwd-vnet0"}}} in removal
    assert state.applied(n.paths) == {}


def test_hook_down_removes_rules(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log())
    reconcile.hook_down(n.paths, "vnet0", fake_nft, log())
    assert len(fake_nft.transactions) == 2
    assert state.applied(n.paths) == {}
    reconcile.hook_down(n.paths, "vnet0", fake_nft, log())
    assert len(fake_nft.transactions) == 2      # nothing of ours left: nothing to do


def test_boot_before_pmxcfs_uses_cache(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    fill_cache(n)
    n.mount_pmxcfs(False)
    n.paths.config.unlink()                      # /etc/pve is an empty dir at boot
    lg = log()
    reconcile.hook_up(n.paths, "vnet0", fake_nft, lg)
    assert loaded_bridges(fake_nft.transactions[0]) == ["vnet0"]
    assert "using the cached configuration" in lg.stream.text
    assert "is not mounted" in lg.stream.text


def test_boot_without_cache_says_nothing_is_protected(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    n.mount_pmxcfs(False)
    lg = log()
    reconcile.hook_up(n.paths, "vnet0", fake_nft, lg)
    assert fake_nft.transactions == []
    assert "no bridge is protected" in lg.stream.text


def test_hook_falls_back_to_last_good_on_invalid_config(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    fill_cache(n)
    n.write_config("bridges:\n  vnet0:\n    gateway-mac: nonsense\n")
    lg = log()
    reconcile.hook_up(n.paths, "vnet0", fake_nft, lg)
    assert loaded_bridges(fake_nft.transactions[0]) == ["vnet0"]
    assert "invalid configuration" in lg.stream.text and "microseg.yaml:3" in lg.stream.text


def test_cache_is_rewritten_only_on_change(fake_node):
    n = node_with_vnet0(fake_node)
    fill_cache(n)
    first = n.paths.cache.stat().st_mtime_ns
    doc = json.loads(n.paths.cache.read_text())
    assert doc["bridges"][0]["bridge"] == "vnet0"
    assert state.save_cache(n.paths, reconcile.read_live(n.paths).bridges, str(n.paths.config)) is False
    assert n.paths.cache.stat().st_mtime_ns == first


def test_plan_covers_bridges_not_on_this_node_yet(fake_node):
    n = node_with_vnet0(fake_node)
    n.write_config(CONFIG + "  vnet1:\n    gateway-mac: 00:00:5e:00:01:65\n    gateway-ip: 10.102.0.1\n")
    p = reconcile.plan(n.paths, reconcile.read(n.paths))
    assert [b.name for b in p.desired] == ["vnet0", "vnet1"]
    assert p.absent == ["vnet1"] and p.added == ["vnet0", "vnet1"]


def test_apply_records_state_and_plan_diffs(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    n.add_bridge("vnet1")
    reconcile.apply(n.paths, fake_nft)
    assert set(state.applied(n.paths)) == {"vnet0"}
    n.write_config("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:99\n"
                   "  vnet1:\n    gateway-mac: 00:00:5e:00:01:65\n    gateway-ip: 10.102.0.1\n")
    p = reconcile.plan(n.paths, reconcile.read(n.paths))
    assert p.added == ["vnet1"] and [new.name for _, new in p.changed] == ["vnet0"]


def test_nft_failure_leaves_state_untouched(fake_node):
    from conftest import FakeNft
    from pve_microseg.model.errors import NftablesError
    n = node_with_vnet0(fake_node)
    import pytest
    with pytest.raises(NftablesError):
        reconcile.apply(n.paths, FakeNft(fail="Error: Could not process rule"))
    assert state.applied(n.paths) == {}
    assert not n.paths.cache.exists()


def test_teardown_removes_the_table_and_every_decision(fake_node, fake_nft):
    from pve_microseg.flows import reconcile
    from pve_microseg.policy import ruleset
    paths = fake_node.paths
    for d in (paths.applied_dir, paths.ignored_dir):
        d.mkdir(parents=True)
        (d / "vnet1").write_text("{}")
    reconcile.teardown(paths, fake_nft)
    assert fake_nft.transactions == [ruleset.delete_table()]
    assert not paths.applied_dir.exists() and not paths.ignored_dir.exists()


def test_readers_write_nothing(fake_node, fake_nft):
    """show, apply --dry-run and the reads under them leave no trace on the node."""
    n = node_with_vnet0(fake_node)
    reconcile.read(n.paths)
    reconcile.show(n.paths)
    reconcile.apply(n.paths, fake_nft, dry_run=True)
    assert not n.paths.state_dir.exists() and not n.paths.run_dir.exists()


def guests_on(n):
    """VM 101 (pve1, this node) and VM 201 (pve2) on vnet0, in .vmlist."""
    pve = n.paths.pve_dir
    for node, vmid, last in (("pve1", 101, "01"), ("pve2", 201, "02")):
        conf = pve / "nodes" / node / "qemu-server" / f"{vmid}.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"net0: virtio=BC:24:11:00:00:{last},bridge=vnet0\nipconfig0: ip=10.101.0.{vmid}/16\n")
    (pve / ".vmlist").write_text(json.dumps({"ids": {"101": {"node": "pve1", "type": "qemu"},
                                                     "201": {"node": "pve2", "type": "qemu"}}}))


def bound_ports(transaction):
    return sorted({e["concat"][0] for c in transaction["nftables"] if "element" in c.get("add", {})
                   and c["add"]["element"]["name"] == "bind-mac" for e in c["add"]["element"]["elem"]})


def test_apply_binds_the_ports_of_this_nodes_guests(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    guests_on(n)
    result = reconcile.apply(n.paths, fake_nft, environ={"PVE_MICROSEG_NODE": "pve1"})
    assert bound_ports(fake_nft.transactions[-1]) == ["fwpr101p0", "tap101i0"]
    assert result.data["bound-ports"] == ["fwpr101p0", "tap101i0"]
    assert [b["port"] for b in state.loaded_bindings(n.paths)] == ["fwpr101p0", "tap101i0"]


def test_hook_up_rebinds_only_when_the_bindings_change(fake_node, fake_nft):
    n = node_with_vnet0(fake_node)
    guests_on(n)
    env = {"PVE_MICROSEG_NODE": "pve1"}
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log(), env)
    assert bound_ports(fake_nft.transactions[-1]) == ["fwpr101p0", "tap101i0"]
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log(), env)
    assert len(fake_nft.transactions) == 1                     # same bindings: no transaction
    conf = n.paths.pve_dir / "nodes/pve1/qemu-server/101.conf"
    conf.write_text(conf.read_text().replace("BC:24:11:00:00:01", "BC:24:11:00:00:09"))
    reconcile.hook_up(n.paths, "vnet0", fake_nft, log(), env)
    assert len(fake_nft.transactions) == 2
    t = fake_nft.transactions[-1]["nftables"]
    assert {"flush": {"set": {"family": "bridge", "table": "pve_microseg", "name": "bind-mac"}}} in t
    assert loaded_bridges(fake_nft.transactions[-1]) == []     # the bridges' rules stay as they were


def test_a_migrating_guests_port_on_this_node_is_bound_too(fake_node, fake_nft):
    """Live migration: the target's tap exists while the config is still on the source node."""
    n = node_with_vnet0(fake_node)
    guests_on(n)
    n.add_interface("tap201i0")
    reconcile.apply(n.paths, fake_nft, environ={"PVE_MICROSEG_NODE": "pve1"})
    assert bound_ports(fake_nft.transactions[-1]) == ["fwpr101p0", "fwpr201p0", "tap101i0", "tap201i0"]


def test_unreadable_guests_do_not_stop_the_bridges_rules(fake_node, fake_nft):
    """A broken .vmlist is no invalid microseg.yaml: the bridges' rules load,
    and the ports keep the bindings last loaded."""
    n = node_with_vnet0(fake_node)
    guests_on(n)
    env = {"PVE_MICROSEG_NODE": "pve1"}
    reconcile.apply(n.paths, fake_nft, environ=env)
    (n.paths.pve_dir / ".vmlist").write_text("{not json")
    n.write_config(CONFIG + "  vnet1:\n    gateway-mac: 00:00:5e:00:01:65\n    gateway-ip: 10.102.0.1\n")
    result = reconcile.apply(n.paths, fake_nft, environ=env)
    assert loaded_bridges(fake_nft.transactions[-1]) == ["vnet0", "vnet1"]
    assert bound_ports(fake_nft.transactions[-1]) == ["fwpr101p0", "tap101i0"]
    assert any("port bindings not rebuilt" in w for w in result.warnings)
    lg = log()
    n.write_config(CONFIG)
    reconcile.hook_up(n.paths, "vnet0", fake_nft, lg, env)
    assert set(state.applied(n.paths)) == {"vnet0"}               # vnet1 removed: the new config applies
    assert "invalid configuration" not in lg.stream.text and "port bindings not rebuilt" in lg.stream.text


def test_hook_up_replaces_a_table_its_update_cannot_build_on(fake_node):
    """A table left by an older version (0.3.0's interval bind sets) makes the
    kernel refuse update(): the hook then replaces the whole table, rather
    than leave a new bridge without rules."""
    from conftest import FakeNft

    class RefusesUpdates(FakeNft):
        def run(self, transaction):
            if not any("delete" in c and "table" in c["delete"] for c in transaction["nftables"]):
                from pve_microseg.model.errors import NftablesError
                raise NftablesError("Error: Could not process rule: File exists")
            super().run(transaction)

    n = node_with_vnet0(fake_node)
    nft = RefusesUpdates()
    reconcile.hook_up(n.paths, "vnet0", nft, log())
    (t,) = nft.transactions
    assert {"delete": {"table": {"family": "bridge", "name": "pve_microseg"}}} in t["nftables"]
    assert loaded_bridges(t) == ["vnet0"] and set(state.applied(n.paths)) == {"vnet0"}


def test_every_transaction_follows_what_this_nodes_nftables_can_load(fake_node):
    """apply, the if-up.d hook and the if-down.d hook ask the nftables edge
    whether it reads `icmpv6 taddr` and build guest-bind accordingly: a
    transaction without the rule would silently drop it on nftables >= 1.1."""
    from conftest import FakeNft
    n = node_with_vnet0(fake_node)
    for nd in (True, False):
        nft = FakeNft(nd_target=nd)
        reconcile.apply(n.paths, nft)
        state.forget(n.paths)
        reconcile.hook_up(n.paths, "vnet0", nft, log())
        reconcile.hook_down(n.paths, "vnet0", nft, log())
        assert len(nft.transactions) == 3
        for t in nft.transactions:
            assert ('"field": "taddr"' in json.dumps(t)) is nd


def _run_dir_broken(n, how):
    """/run/pve-microseg not a directory, or on a full file system."""
    import shutil
    import subprocess
    rd = n.paths.run_dir
    if how == "not a directory":
        shutil.rmtree(rd, ignore_errors=True)
        rd.parent.mkdir(parents=True, exist_ok=True)
        rd.write_text("not a directory\n")
        return lambda: None
    if os.geteuid() != 0:
        unavailable("mounting a full tmpfs needs root")
    rd.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(rd)], check=True)
    subprocess.run(["dd", "if=/dev/zero", f"of={rd}/fill", "bs=4k", "count=1"], capture_output=True)
    return lambda: subprocess.run(["umount", str(rd)])


@pytest.mark.parametrize("how", ["not a directory", "disk full"])
def test_state_that_cannot_be_written_never_stops_the_rules(fake_node, how):
    """Issue 12: a run directory we cannot write (lock, markers, bindings)
    is reported, and the rules load anyway, from the hook and from apply;
    show still answers."""
    from conftest import FakeNft
    n = node_with_vnet0(fake_node)
    fill_cache(n)
    n.write_config(CONFIG + "# changed since the cache\n")
    undo = _run_dir_broken(n, how)
    try:
        nft, lg = FakeNft(), log()
        reconcile.hook_up(n.paths, "vnet0", nft, lg)
        assert loaded_bridges(nft.transactions[0]) == ["vnet0"]
        assert "the rules are loaded, but what was loaded cannot be recorded" in lg.stream.text
        nft = FakeNft()
        result = reconcile.apply(n.paths, nft)
        assert len(nft.transactions) == 1
        assert any("cannot be recorded" in w for w in result.warnings)
        assert reconcile.show(n.paths).data["bridges"][0]["bridge"] == "vnet0"
    finally:
        undo()


@pytest.mark.parametrize("iface", ["../../etc/x", "/etc/passwd", "vnet0\n", "."])
def test_hook_refuses_an_iface_that_is_not_an_interface_name(fake_node, iface):
    """IFACE names marker files of ours: a path is refused before anything is read or written."""
    from pve_microseg.entry import ifupdown
    n = node_with_vnet0(fake_node)
    assert ifupdown.main(["up"], environ=dict(n.env, IFACE=iface)) == 2
    assert not n.paths.run_dir.exists() or not any(n.paths.run_dir.rglob("*"))
