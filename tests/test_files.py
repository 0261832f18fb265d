"""edges/files.py and its users: what a planted link, device or oversized
file does to a reader, what a planted temporary file does to a writer, and
the modes of our own state files (real file modes, whatever the umask)."""

import errno
import os
import stat
import time

import pytest

from conftest import unavailable

from pve_microseg.edges import files, pveconf, state
from pve_microseg.model.bridge import Gateway, ManagedBridge
from pve_microseg.model.config import Document
from pve_microseg.model.errors import ClusterFsError, ConfigError, GuestConfigError

SECRET = "root:$6$secret-hash:19000:0:99999:7:::\n"


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def victim(tmp_path):
    """A file only root should read or change, which a planted link points at."""
    path = tmp_path / "victim"
    path.write_text(SECRET)
    os.chmod(path, 0o600)
    os.utime(path, (1_000_000, 1_000_000))
    return path


def unchanged(victim):
    return victim.read_text() == SECRET and mode(victim) == 0o600 and victim.stat().st_mtime == 1_000_000


# ------------------------------------------------------------------ readers

def test_a_symlinked_fw_file_is_refused_without_echoing_its_target(fake_node, victim):
    fw = fake_node.paths.guest_fw(101)
    fw.parent.mkdir(parents=True)
    fw.symlink_to(victim)
    with pytest.raises(ClusterFsError) as e:
        pveconf.firewall(fw)
    msg = str(e.value)
    assert str(fw) in msg and "symbolic link" in msg
    assert "secret" not in msg and "root:" not in msg


@pytest.mark.parametrize("reader", ["document", "legacy", "sdn", "ipam", "guest"])
def test_every_guest_or_cluster_file_refuses_a_link(fake_node, victim, reader):
    p = fake_node.paths
    target = {"document": p.config, "legacy": p.legacy_config, "sdn": p.sdn_vnets,
              "ipam": p.ipam_state, "guest": p.guest_config("pve1", "qemu", 101)}[reader]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(victim)
    with pytest.raises(ConfigError) as e:
        if reader == "document":
            pveconf.document(p)
        elif reader == "legacy":
            pveconf.legacy(p)
        elif reader == "sdn":
            pveconf.sdn(p)
        elif reader == "ipam":
            pveconf.ipam(p)
        else:
            pveconf.find_guest_config(p, 101, "pve1")
    assert str(target) in str(e.value) and "symbolic link" in str(e.value)
    assert "secret" not in str(e.value)


def test_a_link_to_a_device_is_not_read(tmp_path):
    link = tmp_path / "microseg.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigError) as e:
        files.read_text(link)
    assert "symbolic link" in str(e.value)


def test_root_s_own_files_may_be_linked_but_never_to_a_device(tmp_path):
    conf = tmp_path / "ifupdown2.conf.real"
    conf.write_text("addon_scripts_support=1\n")
    link = tmp_path / "ifupdown2.conf"
    link.symlink_to(conf)
    assert files.read_text(link, follow_links=True) == "addon_scripts_support=1\n"
    link.unlink()
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigError) as e:
        files.read_text(link, follow_links=True)
    assert "character device" in str(e.value)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "101.fw"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(ClusterFsError) as e:
        files.read_text(fifo, error=ClusterFsError)
    assert time.monotonic() - t0 < 2
    assert str(fifo) in str(e.value) and "FIFO" in str(e.value)


def test_a_device_is_refused(tmp_path):
    dev = tmp_path / "101.conf"
    try:
        os.mknod(dev, 0o600 | stat.S_IFCHR, os.makedev(1, 5))      # /dev/zero
    except OSError as e:
        unavailable(f"cannot create a device node here: {e.strerror}")
    with pytest.raises(GuestConfigError) as e:
        files.read_text(dev, error=GuestConfigError)
    assert "character device" in str(e.value)


def test_larger_than_pmxcfs_allows_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "microseg.yaml"
    path.write_bytes(b"#" * files.MAX_SIZE)
    assert len(files.read_text(path)) == files.MAX_SIZE          # exactly the limit: read
    path.write_bytes(b"#" * (files.MAX_SIZE + 1))
    with pytest.raises(ConfigError) as e:
        files.read_text(path)
    assert str(path) in str(e.value) and "1 MiB" in str(e.value)


# ------------------------------------------------------------------ writers

def test_write_atomic_never_writes_through_a_planted_temporary_link(tmp_path, victim):
    target = tmp_path / "out"
    for tmp in (files.temporary(target), target.with_name(f"out.tmp.{os.getpid()}")):
        tmp.symlink_to(victim)
        files.write_atomic(target, "new\n", mode=0o755, tmp=tmp)
        assert unchanged(victim)
        assert target.read_text() == "new\n" and mode(target) == 0o755 and not target.is_symlink()
        assert not os.path.lexists(tmp)


def test_write_atomic_sets_the_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        files.write_atomic(tmp_path / "a", "x", mode=0o755)
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == 0o755
    files.write_atomic(tmp_path / "b", "x")
    assert mode(tmp_path / "b") == 0o600                       # private unless asked


def test_a_marker_planted_as_a_link_is_replaced_not_followed(fake_node, victim):
    p = fake_node.paths
    p.ignored_dir.mkdir(parents=True)
    (p.ignored_dir / "vmbr1").symlink_to(victim)
    state.mark_ignored(p, "vmbr1", 2_000_000_000_000_000_000)
    assert unchanged(victim)
    marker = p.ignored_dir / "vmbr1"
    assert not marker.is_symlink() and marker.stat().st_mtime_ns == 2_000_000_000_000_000_000


def test_a_lock_planted_as_a_link_is_not_followed(fake_node, tmp_path):
    p = fake_node.paths
    p.run_dir.mkdir(parents=True)
    elsewhere = tmp_path / "created-by-us"
    p.lock.symlink_to(elsewhere)
    with state.locked(p) as no_lock:
        assert no_lock and str(p.lock) in no_lock            # goes on without it, and says so
    assert not os.path.lexists(elsewhere)


def test_open_private_refuses_a_link(tmp_path, victim):
    link = tmp_path / "lock"
    link.symlink_to(victim)
    with pytest.raises(OSError) as e:
        files.open_private(link)
    assert e.value.errno == errno.ELOOP and unchanged(victim)


# ------------------------------------------------------------------ modes of our state

BRIDGE = ManagedBridge("web", Gateway(macs=("02:00:00:00:01:01",)))


def test_state_is_root_only(fake_node):
    p = fake_node.paths
    state.save_cache(p, (BRIDGE,), str(p.config))
    state.save_document(p, "bridges: {}\n", Document())
    state.record(p, (BRIDGE,), 1)
    state.mark_ignored(p, "vmbr9", 1)
    state.hold(p, 101, "why")
    with state.locked(p):
        pass
    for d in (p.state_dir, p.run_dir, p.applied_dir, p.ignored_dir, p.held_dir):
        assert mode(d) == 0o700, d
    for f in (p.cache, p.run_dir / "microseg.yaml.json", p.applied_dir / "web", p.ignored_dir / "vmbr9",
              p.held_dir / "101", p.lock):
        assert mode(f) == 0o600, f


def test_an_older_world_readable_cache_is_tightened_by_the_next_apply(fake_node):
    p = fake_node.paths
    state.save_cache(p, (BRIDGE,), str(p.config))
    state.save_document(p, "bridges: {}\n", Document())
    doc_cache = p.run_dir / "microseg.yaml.json"
    for d in (p.state_dir, p.run_dir):
        os.chmod(d, 0o755)
    for f in (p.cache, doc_cache):
        os.chmod(f, 0o644)
    assert state.save_cache(p, (BRIDGE,), str(p.config)) is False      # unchanged: not rewritten...
    assert mode(p.state_dir) == mode(p.run_dir) == 0o700               # ...but tightened
    assert mode(p.cache) == mode(doc_cache) == 0o600
