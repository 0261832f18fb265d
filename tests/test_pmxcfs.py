"""pmxcfs: the cfs lock protocol and atomic publication of files."""

import errno
import io
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT
from pve_microseg.edges import pmxcfs
from pve_microseg.model.errors import ClusterFsError


@pytest.fixture
def paths(fake_node):
    (fake_node.paths.pve_dir / "priv").mkdir()
    return fake_node.paths


def test_lock_is_a_directory_removed_afterwards(paths):
    with pmxcfs.cfs_lock(paths, "firewall-vm-101") as held:
        assert held == paths.lock_dir / "firewall-vm-101" and held.is_dir()
    assert not held.exists()


def test_lock_is_released_when_the_work_fails(paths):
    with pytest.raises(RuntimeError):
        with pmxcfs.cfs_lock(paths, "firewall-vm-101"):
            raise RuntimeError("boom")
    assert not (paths.lock_dir / "firewall-vm-101").exists()


def test_waiter_sends_unlock_requests_and_times_out(paths):
    held = paths.lock_dir / "firewall-vm-101"
    held.mkdir(parents=True)
    os.utime(held, (1_000_000, 1_000_000))
    err = io.StringIO()
    t0 = time.monotonic()
    with pytest.raises(ClusterFsError) as e:
        with pmxcfs.cfs_lock(paths, "firewall-vm-101", timeout=0.5, stderr=err):
            pass
    assert 0.5 <= time.monotonic() - t0 < 3
    assert "cfs-lock 'firewall-vm-101' error: got lock request timeout" in str(e.value)
    assert "trying to acquire cfs lock 'firewall-vm-101' ..." in err.getvalue()
    assert held.stat().st_mtime == 0            # the unlock request pmxcfs acts on
    assert held.is_dir()                        # someone else's lock is never removed


def test_waiter_gets_the_lock_when_the_holder_releases(paths):
    held = paths.lock_dir / "firewall-vm-101"
    held.mkdir(parents=True)
    threading.Timer(0.3, held.rmdir).start()
    with pmxcfs.cfs_lock(paths, "firewall-vm-101", timeout=5, stderr=io.StringIO()):
        assert held.is_dir()


def test_no_quorum_is_named(paths, monkeypatch):
    # pmxcfs answers EACCES to mkdir without quorum (root cannot get EACCES from a plain fs)
    real_mkdir = os.mkdir

    def mkdir(path, *a):
        if str(path).endswith("firewall-vm-101"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkdir(path, *a)
    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(ClusterFsError) as e:
        with pmxcfs.cfs_lock(paths, "firewall-vm-101"):
            pass
    assert "no quorum" in str(e.value)


def test_not_mounted(fake_node):
    (fake_node.paths.pve_dir / "priv").write_text("not a dir")
    with pytest.raises(ClusterFsError) as e:
        with pmxcfs.cfs_lock(fake_node.paths, "firewall-vm-101"):
            pass
    assert "not online" in str(e.value)


def test_write_publishes_atomically_and_leaves_no_temp_file(paths):
    target = paths.guest_fw(101)
    pmxcfs.write_file(target, "[OPTIONS]\n\nenable: 1\n")
    assert target.read_text() == "[OPTIONS]\n\nenable: 1\n"
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    stale = target.with_name(f"101.fw.tmp.{os.getpid()}")
    stale.write_text("left by a crash")
    pmxcfs.write_file(target, "x\n")
    assert sorted(p.name for p in target.parent.iterdir()) == ["101.fw"]
    pmxcfs.write_file(target, "")
    assert not target.exists()


def test_too_large_is_refused_before_writing(paths):
    target = paths.guest_fw(101)
    pmxcfs.write_file(target, "old\n")
    with pytest.raises(ClusterFsError) as e:
        pmxcfs.write_file(target, "x" * (1024 * 1024 + 1))
    assert "1 MiB" in str(e.value)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["101.fw"]


def test_undecodable_file_is_an_error(paths):
    target = paths.guest_fw(101)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"[OPTIONS]\n\xff\n")
    with pytest.raises(ClusterFsError) as e:
        pmxcfs.read_file(target)
    assert "not UTF-8" in str(e.value)


_SLOW_WRITER = """
import sys, time
sys.path.insert(0, {lib!r})
from pathlib import Path
from pve_microseg.edges import pmxcfs
import os
real_write = os.write
def slow_write(fd, data):
    n = real_write(fd, bytes(data[:4096]))
    print("wrote", flush=True)
    time.sleep(0.05)
    return n
os.write = slow_write
pmxcfs.write_file(Path({target!r}), "new line\\n" * 20000)
"""


def test_writer_killed_mid_write_leaves_the_old_file(paths):
    target = paths.guest_fw(101)
    pmxcfs.write_file(target, "old\n")
    p = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER.format(lib=str(ROOT / "lib"), target=str(target))],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "wrote\n"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert target.read_text() == "old\n"        # the temp file may remain; the target is intact
    pmxcfs.write_file(target, "new\n")            # and the next writer cleans nothing it must not
    assert target.read_text() == "new\n"


def _refuse(monkeypatch, number, name="firewall-vm-101"):
    real_mkdir = os.mkdir

    def mkdir(path, *a):
        if str(path).endswith(name):
            raise OSError(number, os.strerror(number))
        return real_mkdir(path, *a)
    monkeypatch.setattr(os, "mkdir", mkdir)


def _lock_error(paths):
    with pytest.raises(ClusterFsError) as e:
        with pmxcfs.cfs_lock(paths, "firewall-vm-101"):
            pass
    return str(e.value)


@pytest.mark.parametrize("quorate,expected", [
    (0, "no quorum! ("), (1, "permission denied by pmxcfs although the node is quorate"),
    (None, "permission denied (no quorum?")])
def test_eacces_as_root_is_no_quorum_only_when_members_says_so(paths, monkeypatch, quorate, expected):
    """pmxcfs answers EACCES to changes without quorum (dcdb_send_fuse_message);
    .members says whether the cluster is quorate."""
    if quorate is not None:
        (paths.pve_dir / ".members").write_text(
            '{"nodename": "pve1", "version": 3, "cluster": {"name": "c", "version": 2, "nodes": 2, '
            f'"quorate": {quorate}}}, "nodelist": {{}}}}')
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    _refuse(monkeypatch, errno.EACCES)
    assert expected in _lock_error(paths)


@pytest.mark.parametrize("number", [errno.EACCES, errno.EPERM])
def test_a_plain_permission_error_is_not_reported_as_no_quorum(paths, monkeypatch, number):
    (paths.pve_dir / ".members").write_text('{"cluster": {"quorate": 0}}')
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    _refuse(monkeypatch, number)
    message = _lock_error(paths)
    assert "no quorum" not in message and "only root may change /etc/pve" in message


def test_eperm_as_root_is_not_quorum_either(paths, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    _refuse(monkeypatch, errno.EPERM)
    message = _lock_error(paths)
    assert "no quorum" not in message and "operation not permitted by pmxcfs" in message


def test_a_write_refused_as_non_root_says_root_is_needed(paths, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    real_open = os.open

    def refuse(path, *a, **kw):
        if ".tmp." in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **kw)
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ClusterFsError) as e:
        pmxcfs.write_file(paths.guest_fw(101), "[OPTIONS]\n")
    assert "no quorum" not in str(e.value) and "only root may change /etc/pve" in str(e.value)
    assert str(e.value).endswith("left unchanged")


def test_quorate_reads_what_pmxcfs_writes(tmp_path):
    members = tmp_path / ".members"
    assert pmxcfs.quorate(members) is None
    members.write_text("{\n}\n")                   # pmxcfs without cluster information
    assert pmxcfs.quorate(members) is None
    members.write_text('{"cluster": {"quorate": 1}}')
    assert pmxcfs.quorate(members) is True
    members.write_text('{"cluster": {"quorate": "yes"}}')
    assert pmxcfs.quorate(members) is None
