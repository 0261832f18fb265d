"""pve-microseg hookscript install, on the simulated cluster."""

import json
import os

import pytest

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
