import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FakeNft, ROOT
from pve_microseg.entry import cli
from pve_microseg.edges import state
from pve_microseg.edges.log import Log

CONFIG = ("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n"
          "  vmbr9:\n    gateway-mac: 52:54:00:12:34:56\n    gateway-ip: 192.168.9.1\n")


@pytest.fixture
def node(fake_node, monkeypatch):
    fake_node.running_config()
    fake_node.write_config(CONFIG)
    fake_node.add_bridge("vnet0")
    fake_node.nft = FakeNft()
    monkeypatch.setattr(cli, "Nft", lambda dry_run=False: fake_node.nft.dry(dry_run))
    return fake_node


def _dry(self, dry_run):
    self.dry_run = dry_run
    return self


FakeNft.dry = _dry


def run(node, *argv):
    out = io.StringIO()
    rc = cli.main(list(argv), environ=node.env, out=out)
    return rc, out.getvalue()


def test_apply_loads_bridges_on_this_node(node):
    rc, out = run(node, "apply")
    assert rc == 0
    assert "loaded: 2 managed bridge(s): vmbr9, vnet0" in out
    assert "not on this node (yet): vmbr9" in out
    assert node.nft.dry_run is False and len(node.nft.transactions) == 1
    assert set(state.applied(node.paths)) == {"vnet0", "vmbr9"}


def test_apply_dry_run_changes_nothing(node):
    rc, out = run(node, "apply", "--dry-run", "--diff")
    assert rc == 0
    assert node.nft.dry_run is True                 # the kernel only checks
    assert "+ vnet0: gateway 00:00:5e:00:01:64" in out
    assert "+ vmbr9: gateway 52:54:00:12:34:56" in out
    assert "nothing was changed" in out
    assert state.applied(node.paths) == {}


def test_apply_diff_after_change(node):
    run(node, "apply")
    node.write_config(CONFIG.replace("00:00:5e:00:01:64", "00:00:5e:00:01:65"))
    rc, out = run(node, "apply", "--diff")
    assert "~ vnet0: gateway-mac 00:00:5e:00:01:64 -> 00:00:5e:00:01:65" in out
    node.write_config("bridges: {}\n")
    rc, out = run(node, "apply", "--diff")
    assert "- vmbr9\n- vnet0" in out


def test_invalid_config_exits_2_and_changes_nothing(node, capsys):
    run(node, "apply")
    before = len(node.nft.transactions)
    node.write_config("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:6\n")
    rc, out = run(node, "apply")
    assert rc == 2
    assert len(node.nft.transactions) == before
    assert "microseg.yaml:3: bridges.vnet0.gateway-mac:" in capsys.readouterr().err
    assert set(state.applied(node.paths)) == {"vnet0", "vmbr9"}


def test_nft_refusal_exits_3(node, capsys):
    node.nft.fail = "Error: Could not process rule: No such file or directory"
    rc, _ = run(node, "apply")
    assert rc == 3
    assert "nothing was changed" in capsys.readouterr().err
    assert state.applied(node.paths) == {}


@pytest.mark.parametrize("fmt,load", [("json", json.loads), ("json-pretty", json.loads),
                                      ("yaml", yaml.safe_load)])
def test_show_machine_formats(node, fmt, load):
    rc, out = run(node, "show", "--output-format", fmt)
    data = load(out)
    assert rc == 0
    assert {b["bridge"]: b["present"] for b in data["bridges"]} == {"vnet0": True, "vmbr9": False}
    assert data["nftables"]["nftables"][0] == {"add": {"table": {"family": "bridge", "name": "pve_microseg"}}}


def test_show_json_is_one_line_sorted_like_pvesh(node):
    _, out = run(node, "show", "--output-format", "json")
    assert out.count("\n") == 1 and out == json.dumps(json.loads(out), sort_keys=True) + "\n"


def test_show_text(node):
    rc, out = run(node, "show")
    assert "vnet0           vnet   on this node      no rules loaded" in out
    assert "gateway IPv4: 10.101.1.1" in out


def test_warns_when_ifupdown2_skips_scripts(node, capsys):
    node.paths.ifupdown2_conf.write_text("addon_scripts_support=0\n")
    run(node, "show")
    assert "addon_scripts_support=0" in capsys.readouterr().err
    # and never edits the operator's file
    assert node.paths.ifupdown2_conf.read_text() == "addon_scripts_support=0\n"


def test_ifupdown2_without_the_setting_runs_no_scripts(node, capsys):
    """ifupdown2's built-in default is 0 (Debian's shipped file sets 1)."""
    node.paths.ifupdown2_conf.write_text("# ifupdown2.conf\ntemplate_lookuppath=/etc/network/ifupdown2/templates\n")
    run(node, "show")
    assert "addon_scripts_support not set (ifupdown2's default: 0)" in capsys.readouterr().err


def test_help_answers_real_questions():
    out = subprocess.run([sys.executable, str(ROOT / "bin/pve-microseg"), "apply", "--help"],
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "lib")),
                         capture_output=True, text=True, check=True).stdout
    assert "--dry-run" in out and "atomic" in out


# ----------------------------------------------------- the shell wrappers

HOOK_UP = ROOT / "ifupdown/if-up.d/pve-microseg"
HOOK_DOWN = ROOT / "ifupdown/if-down.d/pve-microseg"


@pytest.mark.parametrize("hook", [HOOK_UP, HOOK_DOWN])
def test_hooks_are_executable_shell_scripts(hook):
    assert os.access(hook, os.X_OK)
    assert hook.read_text().startswith("#!/bin/sh\n")


def test_up_hook_returns_at_once_for_non_bridges(node):
    # no IF_BRIDGE_PORTS: not a bridge; python must not even start
    env = dict(node.env, IFACE="eth0", PHASE="up", MODE="start", PATH="/nonexistent")
    r = subprocess.run(["/bin/sh", str(HOOK_UP)], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""
    assert not node.paths.run_dir.exists()


def test_down_hook_returns_at_once_without_our_rules(node):
    env = dict(node.env, IFACE="vnet0", PHASE="down", MODE="stop", IF_BRIDGE_PORTS="ln_vnet0")
    r = subprocess.run(["/bin/sh", str(HOOK_DOWN)], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""
    assert not node.paths.run_dir.exists()


def _decide(node):
    """Run the Python side once, as the first hook of an ifreload would."""
    from pve_microseg.flows import reconcile
    from pve_microseg.edges.log import Log
    reconcile.hook_up(node.paths, "vmbr0", FakeNft(), Log(stream=io.StringIO(), use_syslog=False))


def _up_hook(node, iface):
    env = dict(node.env, IFACE=iface, PHASE="up", MODE="start", IF_BRIDGE_PORTS="eth0")
    return subprocess.run(["/bin/sh", str(HOOK_UP)], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("iface", ["vnet0", "vmbr0"])   # loaded / found unmanaged
def test_up_hook_skips_python_when_nothing_changed(node, iface):
    _decide(node)
    r = _up_hook(node, iface)
    # /usr/bin/python3 -I cannot import pve_microseg from this checkout: had the
    # wrapper started Python, it would have failed loudly
    assert r.returncode == 0 and r.stderr == ""


@pytest.mark.parametrize("conf", ["config", "legacy_config", "sdn_running_config"])
def test_up_hook_starts_python_after_a_configuration_change(node, conf):
    _decide(node)
    path = getattr(node.paths, conf)
    if not path.exists():
        path.write_text("")
    later = state.config_stamp(node.paths) + 2_000_000_000
    os.utime(path, ns=(later, later))
    r = _up_hook(node, "vnet0")
    assert r.stderr != ""          # Python started (and, here, could not import us)


def test_up_hook_starts_python_for_a_new_bridge(node):
    _decide(node)
    assert _up_hook(node, "vnet7").stderr != ""


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e9", "soon"])
def test_timeouts_must_be_a_finite_positive_number(value, capsys):
    """Issue 12: `status --timeout nan` went into a traceback, -1 and 0 were accepted."""
    from pve_microseg.entry import cli
    for argv in (["status", "--timeout", value], ["vnet", "enable", "web", "--apply", "--timeout", value]):
        with pytest.raises(SystemExit) as e:
            cli.build_parser().parse_args(argv)
        assert e.value.code == 2
        assert "--timeout" in capsys.readouterr().err


# ---------------------------------------------------------------- every error a clear one (issue 12)

def _no_traceback(err):
    assert "Traceback" not in err and 'File "' not in err, err


@pytest.mark.parametrize("mac,why", [
    ("zz", "is not a MAC address"), ("ff:ff:ff:ff:ff:ff", "multicast/broadcast"),
    ("01:00:5e:00:00:01", "multicast/broadcast"), ("33:33:00:00:00:01", "multicast/broadcast"),
    ("00:00:00:00:00:00", "not a usable MAC address")])
def test_a_gateway_mac_that_cannot_be_one_is_a_usage_error(node, capsys, mac, why):
    rc, out = run(node, "vnet", "enable", "vnet0", "--gateway-mac", mac, "--dry-run")
    err = capsys.readouterr().err
    assert rc == 2 and out == ""
    assert f"argument --gateway-mac: " in err and why in err
    _no_traceback(err)
    rc, out = run(node, "vnet", "enable", "vnet0", "--gateway-mac", mac, "--output-format", "json")
    assert rc == 2
    error = json.loads(out)["error"]
    assert error["exit-code"] == 2 and why in error["message"]


def test_the_vnet_flow_refuses_a_bad_mac_itself(node):
    from pve_microseg.flows import vnet
    from pve_microseg.model.errors import MicrosegError
    with pytest.raises(MicrosegError, match="--gateway-mac: 'zz' is not a MAC address"):
        vnet._gateway_macs(["00:00:5e:00:01:64", "zz"])


@pytest.mark.parametrize("vmid", ["١٠١", "²", "１０１", "0101", "99", "1000000000", "+101", " 101", "101\n"])
def test_a_vmid_is_ascii_digits_as_proxmox_writes_it(node, capsys, vmid):
    for argv in (["guest", "sync", vmid], ["guest", "attach", vmid, "--dry-run"]):
        rc, out = run(node, *argv)
        err = capsys.readouterr().err
        assert rc == 2 and "argument VMID:" in err and "is not a VMID" in err, err
        _no_traceback(err)


@pytest.mark.parametrize("fmt,load", [("json", json.loads), ("json-pretty", json.loads),
                                      ("yaml", yaml.safe_load)])
@pytest.mark.parametrize("argv", [
    ["status", "--timeout", "nan"], ["nonsense"], [], ["guest", "sync"], ["show", "--bogus"],
    ["vnet", "enable", "vnet0", "--gateway-mac", "zz"]])
def test_usage_errors_are_machine_readable_in_machine_formats(node, capsys, argv, fmt, load):
    for tail in (["--output-format", fmt], [f"--output-format={fmt}"], ["--output", fmt]):
        rc, out = run(node, *argv, *tail)
        err = capsys.readouterr().err
        assert rc == 2
        error = load(out)["error"]
        assert error["exit-code"] == 2 and "error:" in error["message"] and error["message"] in err
    rc, out = run(node, *argv)                      # text: stderr only, as before
    assert rc == 2 and out == ""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_unexpected_exception_is_an_internal_error_never_a_traceback(node, capsys, monkeypatch, fmt):
    def broken(args, paths, environ):
        return {}["no such key"]
    monkeypatch.setitem(cli.COMMANDS, "show", broken)
    rc, out = run(node, "show", "--output-format", fmt)
    err = capsys.readouterr().err
    assert rc == 1
    assert "error: internal error KeyError: 'no such key' (please report it" in err
    _no_traceback(err)
    if fmt == "json":
        assert json.loads(out)["error"]["exit-code"] == 1
        assert "internal error KeyError" in json.loads(out)["error"]["message"]
    else:
        assert out == ""


def test_a_renderer_that_fails_is_an_internal_error_too(node, capsys, monkeypatch):
    from pve_microseg.entry import render
    monkeypatch.setattr(render, "show", lambda data: [None.field])
    rc, out = run(node, "show")
    err = capsys.readouterr().err
    assert rc == 1 and "internal error AttributeError" in err and out == ""
    _no_traceback(err)


def test_errors_in_json_keep_their_details(node):
    node.write_config("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:6\n")
    rc, out = run(node, "show", "--output-format", "json")
    error = json.loads(out)["error"]
    assert rc == 2 and error["exit-code"] == 2 and error["line"] == 3
    assert error["field"] == "bridges.vnet0.gateway-mac"


def _deny(monkeypatch, path):
    from pve_microseg.edges import files
    real = os.open

    def denied(p, *a, **kw):
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied", str(p))
        return real(p, *a, **kw)
    monkeypatch.setattr(files.os, "open", denied)


@pytest.mark.parametrize("command", ["show", "apply", "status"])
def test_not_root_says_root_is_needed(node, capsys, monkeypatch, command):
    """Issue 12: a non-root show/apply.  /etc/pve/microseg.yaml is 0640 root:www-data."""
    _deny(monkeypatch, node.paths.config)
    monkeypatch.setattr(cli.node, "is_root", lambda: False)
    rc, out = run(node, command)
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "microseg.yaml: cannot read: Permission denied" in err and cli.NEEDS_ROOT in err
    _no_traceback(err)


def test_not_root_and_nftables_refuses(node, capsys, monkeypatch):
    node.nft.fail = "netlink: Error: cache initialization failed: Operation not permitted"
    monkeypatch.setattr(cli.node, "is_root", lambda: False)
    rc, _ = run(node, "apply")
    err = capsys.readouterr().err
    assert rc == 1 and cli.NEEDS_ROOT in err


def test_root_keeps_the_exit_status_of_the_error(node, capsys, monkeypatch):
    _deny(monkeypatch, node.paths.config)
    monkeypatch.setattr(cli.node, "is_root", lambda: True)
    rc, _ = run(node, "show")
    err = capsys.readouterr().err
    assert rc == 2 and cli.NEEDS_ROOT not in err


def test_an_unexpected_permission_error_names_the_file(node, capsys, monkeypatch):
    def denied(args, paths, environ):
        raise PermissionError(13, "Permission denied", "/run/pve-microseg/lock")
    monkeypatch.setitem(cli.COMMANDS, "apply", denied)
    monkeypatch.setattr(cli.node, "is_root", lambda: False)
    rc, _ = run(node, "apply")
    err = capsys.readouterr().err
    assert rc == 1 and "/run/pve-microseg/lock: Permission denied" in err and cli.NEEDS_ROOT in err
    _no_traceback(err)


def test_exit_statuses_are_documented_in_help_and_man_page():
    from pve_microseg.model.errors import ExitCode
    man = (ROOT / "debian/pve-microseg.8").read_text()
    section = man[man.index(".SH EXIT STATUS"):man.index(".SH ENVIRONMENT")]
    epilog = " ".join(cli.EPILOG[cli.EPILOG.index("exit status:"):].split())
    for code in ExitCode:
        assert f".TP\n.B {int(code)}\n" in section, code
        assert f" {int(code)} " in epilog, code


# ---------------------------------------------------------------- the if-up.d/if-down.d entry (issue 12)

def test_the_up_hook_loads_the_last_good_rules_after_an_unexpected_failure(node, monkeypatch, capsys):
    from pve_microseg.entry import ifupdown
    from pve_microseg.flows import reconcile
    from test_reconcile import fill_cache, loaded_bridges
    fill_cache(node)
    node.nft.transactions.clear()

    def broken(*a, **kw):
        raise KeyError("a bug of ours")
    monkeypatch.setattr(reconcile, "hook_up", broken)
    monkeypatch.setattr(ifupdown, "Nft", node.nft)
    monkeypatch.setattr(ifupdown, "Log", lambda: Log(use_syslog=False))
    rc = ifupdown.main(["up"], environ=dict(node.env, IFACE="vnet0"))
    err = capsys.readouterr().err
    assert rc == 1
    assert "vnet0: internal error KeyError: 'a bug of ours'" in err
    _no_traceback(err)
    assert loaded_bridges(node.nft.transactions[0]) == ["vmbr9", "vnet0"]     # protected all the same
    assert "using the cached configuration" in err


def test_the_up_hook_says_so_when_the_last_good_rules_cannot_load_either(node, monkeypatch, capsys):
    from pve_microseg.entry import ifupdown
    from pve_microseg.flows import reconcile

    def broken(*a, **kw):
        raise KeyError("a bug of ours")
    monkeypatch.setattr(reconcile, "hook_up", broken)
    monkeypatch.setattr(reconcile, "read_cached", broken)
    monkeypatch.setattr(ifupdown, "Nft", node.nft)              # never the real kernel
    monkeypatch.setattr(ifupdown, "Log", lambda: Log(use_syslog=False))
    rc = ifupdown.main(["up"], environ=dict(node.env, IFACE="vnet0"))
    err = capsys.readouterr().err
    assert rc == 1 and "the last good rules could not be loaded either" in err
    _no_traceback(err)


def test_the_down_hook_reports_an_unexpected_failure_in_one_line(node, monkeypatch, capsys):
    from pve_microseg.entry import ifupdown
    from pve_microseg.flows import reconcile

    def broken(*a, **kw):
        raise ValueError("odd")
    monkeypatch.setattr(reconcile, "hook_down", broken)
    monkeypatch.setattr(ifupdown, "Nft", node.nft)
    monkeypatch.setattr(ifupdown, "Log", lambda: Log(use_syslog=False))
    rc = ifupdown.main(["down"], environ=dict(node.env, IFACE="vnet0"))
    err = capsys.readouterr().err
    assert rc == 1 and "vnet0: internal error ValueError: odd" in err
    _no_traceback(err)
