"""pve-microseg hookscript install, on the simulated cluster."""

import json
import os
import subprocess

import pytest

from conftest import unavailable
from pvesim import HOOKSCRIPT, Cluster


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    share = tmp_path / "usr/share/pve-microseg"
    share.mkdir(parents=True)
    (share / HOOKSCRIPT.name).write_bytes(HOOKSCRIPT.read_bytes())
    c.env["PVE_MICROSEG_SHARE_DIR"] = str(share)
    return c


def run(cluster, *argv):
    return cluster.cli("hookscript", "install", *argv)


def test_installs_into_local_snippets_and_names_the_other_nodes(cluster):
    target = cluster.snippets / HOOKSCRIPT.name
    rc, out = run(cluster, "--dry-run")
    assert rc == 0 and "would be installed" in out and not target.exists()
    rc, out = run(cluster)
    assert rc == 0 and f"{target}: installed (local:snippets/{HOOKSCRIPT.name})" in out
    assert target.read_bytes() == HOOKSCRIPT.read_bytes() and os.access(target, os.X_OK)
    assert "run 'pve-microseg hookscript install --storage local' on pve2 too" in out
    rc, out = run(cluster, "--output-format", "json")
    data = json.loads(out)
    assert data["changed"] is False and data["install-also-on"] == ["pve2"]
    assert data["volume"] == f"local:snippets/{HOOKSCRIPT.name}"


def test_the_installed_copy_is_what_qm_runs(cluster):
    run(cluster)
    cluster.write("microseg.yaml", "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n"
                  "    gateway-ip: 10.100.0.1\n")
    cluster.add_vm(101, {0: "virtio=BC:24:11:2C:69:EC,bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    r = cluster.qm("start", 101)
    assert r.returncode == 0, r.stderr
    assert "10.100.0.5" in cluster.fw(101)


def test_shared_and_unsuitable_storages(cluster):
    cfg = cluster.pve / "storage.cfg"
    cfg.write_text(cfg.read_text() + f"\nnfs: shared-nfs\n\tpath {cluster.root}/mnt/pve/shared-nfs\n"
                   "\tserver 192.0.2.9\n\texport /srv\n\tcontent images\n")
    rc, out = run(cluster, "--storage", "shared-nfs")
    assert rc == 0 and "on pve2" not in out
    assert "does not list content 'snippets'" in out
    assert (cluster.root / "mnt/pve/shared-nfs/snippets" / HOOKSCRIPT.name).exists()
    rc, _ = run(cluster, "--storage", "local-lvm")
    assert rc == 2                                  # not path-based: a configuration error
    rc, _ = run(cluster, "--storage", "nope")
    assert rc == 2



def test_install_never_writes_or_chmods_through_a_planted_link(cluster, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root only\n")
    os.chmod(victim, 0o600)
    target = cluster.snippets / HOOKSCRIPT.name
    # the temporary names a writer with this pid could use (the CLI runs in this process)
    for name in (f".{target.name}.tmp.{os.getpid()}", f"{target.name}.tmp.{os.getpid()}"):
        (cluster.snippets / name).symlink_to(victim)
    target.symlink_to(victim)                       # and the target itself
    rc, out = run(cluster)
    assert rc == 0, out
    assert victim.read_text() == "root only\n" and oct(victim.stat().st_mode & 0o777) == "0o600"
    assert not target.is_symlink() and target.read_bytes() == HOOKSCRIPT.read_bytes()
    assert oct(target.stat().st_mode & 0o777) == "0o755"

# ------------------------------------------------------------------ after `apt remove`

@pytest.fixture
def removed(cluster, tmp_path):
    """The hookscript installed and attached to VM 101 and CT 201; then the
    library gone, as `apt remove pve-microseg` leaves the node."""
    run(cluster)
    cluster.add_vm(101, {0: "virtio=BC:24:11:2C:69:EC,bridge=vmbr0,firewall=1"})
    cluster.add_ct(201, {0: "name=eth0,hwaddr=BC:24:11:2C:69:ED,bridge=vmbr0,firewall=1"})
    empty = tmp_path / "no-library"
    empty.mkdir()
    cluster.env["PYTHONPATH"] = str(empty)
    r = subprocess.run(["/usr/bin/python3", "-c", "import pve_microseg"], env=cluster.env, capture_output=True)
    if r.returncode == 0:
        unavailable("pve_microseg is installed system-wide: the removed library cannot be simulated")
    return cluster


def ours(stderr, phases=1):
    """Our line (pre-start says one), no traceback."""
    lines = [line for line in stderr.splitlines() if line.startswith("pve-microseg")]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == phases, stderr
    return lines[0] if lines else None


def test_after_removal_the_leftover_hookscript_refuses_the_start_in_one_line(removed):
    r = removed.qm("start", 101)
    assert r.returncode != 0 and not removed.running(101)
    line = ours(r.stderr)
    assert "guest 101 not started" in line and "removed" in line and "fail-closed" in line
    assert "'qm set 101 --delete hookscript'" in line and "reinstall" in line
    r = removed.pct("start", 201)
    assert r.returncode != 0 and "'pct set 201 --delete hookscript'" in ours(r.stderr)


@pytest.mark.parametrize("yaml", [
    "hookscript:\n  on-failure: fail-open   # chosen\n",
    "# site policy\nhookscript: {on-failure: 'fail-open'}\n",
    "bridges: {}\nhookscript:\n    strict: true\n    on-failure: \"fail-open\"\nguests: {}\n",
], ids=["block", "flow", "among-others"])
def test_after_removal_fail_open_starts_the_guest_and_says_so(removed, yaml):
    removed.write("microseg.yaml", yaml)
    r = removed.qm("start", 101)
    assert r.returncode == 0 and removed.running(101), r.stderr
    line = ours(r.stderr)
    assert "WARNING: guest 101 starts WITHOUT" in line and "fail-open" in line and "removed" in line
    r = removed.qm("stop", 101)
    assert r.returncode == 0 and ours(r.stderr, phases=0) is None     # stopping: nothing to say


@pytest.mark.parametrize("yaml", [
    "hookscript:\n  on-failure: fail-closed\n",
    "hookscript:\n  on-failure: fail-open\n  on-failure: fail-closed\n",    # duplicate: not for certain
    "guests:\n  101:\n    on-failure: fail-open\n",                          # not hookscript's
    "hookscript:\n  chain:\n    on-failure: fail-open\n",                    # deeper: not hookscript's own
    "hookscript:\n  on-failure: fail-open\n" + "#" * (1024 * 1024) + "\n",  # over 1 MiB: unreadable
], ids=["fail-closed", "duplicate", "guests", "deeper", "too-large"])
def test_after_removal_anything_but_a_clear_fail_open_refuses(removed, yaml):
    removed.write("microseg.yaml", yaml)
    r = removed.qm("start", 101)
    assert r.returncode != 0 and "not started" in ours(r.stderr)


def test_after_removal_a_linked_microseg_yaml_is_not_followed(removed, tmp_path):
    elsewhere = tmp_path / "planted.yaml"
    elsewhere.write_text("hookscript:\n  on-failure: fail-open\n")
    (removed.pve / "microseg.yaml").symlink_to(elsewhere)
    r = removed.qm("start", 101)
    assert r.returncode != 0 and "not started" in ours(r.stderr)


def test_teardown_names_the_guests_of_this_node_that_still_have_the_hookscript(cluster):
    from conftest import FakeNft
    from pve_microseg.edges.paths import Paths
    from pve_microseg.entry import render
    from pve_microseg.flows import reconcile
    cluster.write("microseg.yaml", "guests:\n  102:\n    chain: local:snippets/site.sh\n")
    nic = {0: "virtio=BC:24:11:2C:69:EC,bridge=vmbr0,firewall=1"}
    cluster.add_vm(101, nic)
    cluster.add_vm(102, nic)
    cluster.add_ct(201, {0: "name=eth0,hwaddr=BC:24:11:2C:69:ED,bridge=vmbr0,firewall=1"})
    cluster.add_vm(103, nic, hookscript=False)                         # never attached
    cluster.add_vm(104, nic, node="pve2")                              # another node's
    nft = FakeNft()
    result = reconcile.teardown(Paths.from_env(cluster.env), nft, cluster.env)
    assert nft.transactions                                            # removed all the same
    assert [g["vmid"] for g in result.data["guests-with-hookscript"]] == [101, 102, 201]
    text = "\n".join(render.teardown(result.data))
    assert f"guest 101 (qemu) still has the hookscript local:snippets/{HOOKSCRIPT.name} attached" in text
    assert "'qm set 101 --delete hookscript'" in text
    assert "'qm set 102 --hookscript local:snippets/site.sh' (the script it chained)" in text
    assert "'pct set 201 --delete hookscript'" in text
    assert "103" not in text and "104" not in text


# ---------------------------------------------------------------- the hookscript's own entry (issue 12)

def _entry(cluster, *argv, env=None):
    import io
    from pve_microseg.entry import hookscript
    out, err = io.StringIO(), io.StringIO()
    rc = hookscript.main(list(argv), environ=dict(cluster.env, **(env or {})), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("vmid", ["²", "١٠١", "１０１", "0101", "99", "101x", ""])
def test_the_hookscript_refuses_a_vmid_proxmox_would_not_pass(cluster, vmid):
    rc, out, err = _entry(cluster, vmid, "pre-start")
    assert rc == 2 and "is not a VMID" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-1", "0"])
def test_a_lock_timeout_that_is_not_a_number_is_named_and_ignored(cluster, value):
    cluster.write("microseg.yaml", "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n"
                                   "    gateway-ip: 10.100.0.1\n")
    cluster.add_vm(101, {0: "virtio=BC:24:11:2C:69:EC,bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    rc, out, err = _entry(cluster, "101", "pre-start", env={"PVE_MICROSEG_LOCK_TIMEOUT": value})
    assert rc == 0, err
    assert f"PVE_MICROSEG_LOCK_TIMEOUT: {value!r}" in err and "waiting 10 s instead" in err
    assert "ipfilter-net0" in cluster.fw(101)


@pytest.mark.parametrize("phase,rc_expected", [("pre-start", 1), ("post-stop", 0)])
def test_an_unexpected_failure_outside_the_hook_follows_fail_closed(cluster, monkeypatch, phase, rc_expected):
    from pve_microseg.entry import hookscript

    def broken(environ):
        raise RuntimeError("paths exploded")
    monkeypatch.setattr(hookscript.Paths, "from_env", broken)
    rc, out, err = _entry(cluster, "101", phase)
    assert rc == rc_expected
    assert "internal error RuntimeError: paths exploded" in err and "Traceback" not in err
    if phase == "pre-start":
        assert "guest 101 not started" in err
