"""pve-microseg check: the firewall linter, on Proxmox's fixtures and on the classic mistakes."""

import io
import json

import pytest

from conftest import FIXTURES
from pvesim import Cluster
from pve_microseg.entry import cli
from pve_microseg.policy import fwlint


def lint(text, kind="guest", cluster=""):
    from pve_microseg.parse import fwfile
    return fwlint.lint_file("t.fw", text, kind, fwfile.parse(cluster))


def test_classic_shadowed_drop():
    text = ("[RULES]\n\nIN ACCEPT -p tcp -dport 80\nIN DROP -p tcp -dport 80 -source 10.0.0.0/8\n"
            "IN DROP -p tcp -dport 443 -source 10.0.0.0/8\n")
    f = [x for x in lint(text) if x.severity == "warning"]
    assert len(f) == 1 and f[0].line == 4
    assert "line 3" in f[0].message and "ACCEPTs everything" in f[0].message and "DROP never applies" in f[0].message


def test_long_option_names_are_linted_too():
    """-proto, -iface and --dport are the same options as -p, -i and -dport:
    the linter reads rules with the strict checker's grammar (parse/fwrule.py)."""
    text = ("[RULES]\n\nIN ACCEPT -proto tcp --dport 80 -iface net0\n"
            "IN DROP -p tcp -dport 80 -source 10.0.0.0/8 -i net0\n")
    f = [x for x in lint(text) if x.severity == "warning"]
    assert len(f) == 1 and f[0].line == 4 and "never matches" in f[0].message


@pytest.mark.parametrize("earlier,later,shadowed", [
    ("IN ACCEPT", "IN DROP -p udp", True),
    ("IN ACCEPT -source 10.0.0.0/8", "IN DROP -source 10.1.2.3", True),
    ("IN ACCEPT -source 10.1.0.0/16", "IN DROP -source 10.0.0.0/8", False),
    ("IN ACCEPT -p tcp -dport 1000:2000", "IN DROP -p tcp -dport 1500,1600", True),
    ("IN ACCEPT -p tcp -dport 80", "IN DROP -p udp -dport 80", False),
    ("IN ACCEPT -p tcp -dport 80", "OUT DROP -p tcp -dport 80", False),
    ("IN ACCEPT -i net0", "IN DROP -i net1", False),
    ("IN ACCEPT -source +admins", "IN DROP -source +admins -p tcp", True),
    ("IN ACCEPT -source +admins", "IN DROP -source 10.0.0.1", False),
    ("IN SSH(ACCEPT)", "IN DROP -p tcp -dport 22", False),          # macros are not expanded
    ("IN SSH(ACCEPT)", "IN SSH(DROP) -source 10.0.0.1", True),
    ("|IN ACCEPT", "IN DROP", False),                                 # a disabled rule shadows nothing
])
def test_shadowing_is_decided_conservatively(earlier, later, shadowed):
    text = f"[IPSET admins]\n\n10.0.0.0/24\n\n[RULES]\n\n{earlier}\n{later}\n"
    found = [x for x in lint(text) if "never matches" in x.message]
    assert bool(found) is shadowed, found


def test_references_disabled_rules_and_ipfilter_prefixes():
    cluster = "[ALIASES]\n\nadmin 10.0.0.2\n\n[IPSET management]\n\n10.0.0.0/24\n"
    text = ("[IPSET ipfilter-net0]\n\n10.100.0.0/24\n10.100.0.7\n\n[RULES]\n\n"
            "IN ACCEPT -source dc/admin\nIN ACCEPT -source +dc/management\nIN ACCEPT -source +nope\n"
            "IN ACCEPT -source ghost\n|IN DROP -p tcp\n")
    msgs = [(x.line, x.severity, x.message) for x in lint(text, cluster=cluster)]
    assert any(l == 3 and "admits a whole subnet" in m for l, s, m in msgs)
    assert any(l == 10 and "ipset +nope" in m for l, s, m in msgs)
    assert any(l == 11 and "alias ghost" in m for l, s, m in msgs)
    assert any(l == 12 and s == "info" for l, s, m in msgs)
    assert not any(l in (8, 9) for l, s, m in msgs)


def test_strict_parser_rejections_are_errors():
    text = (FIXTURES / "pve-firewall/test/test-vm-ipfilter1/100.fw").read_text()
    assert any(x.severity == "error" and "rejects this file" in x.message for x in lint(text))


def test_check_command_over_the_cluster(tmp_path):
    c = Cluster(tmp_path)
    c.write("firewall/cluster.fw", "[OPTIONS]\n\nenable: 1\n")
    c.write("nodes/pve1/host.fw", "[OPTIONS]\n\nnftables: 1\n")
    c.write("sdn/firewall/web.fw", "[OPTIONS]\n\nenable: 1\npolicy_forward: DROP\n")
    c.write("firewall/101.fw", (FIXTURES / "proxmox-firewall/proxmox-firewall/tests/input/100.fw").read_text())
    out = io.StringIO()
    env = {k: v for k, v in c.env.items() if k.startswith("PVE_MICROSEG_")}
    rc = cli.main(["check", "--output-format", "json"], environ=env, out=out)
    data = json.loads(out.getvalue())
    assert rc == 10
    msgs = [(f["file"], f["severity"], f["message"]) for f in data["findings"]]
    assert any(f == "sdn/firewall/web.fw" and s == "error" and "pve2" in m for f, s, m in msgs)
    assert any(f == "cluster.fw" and "management" in m for f, s, m in msgs)
    assert "firewall/101.fw" in data["files"]
    c.write("firewall/cluster.fw", "[OPTIONS]\n\nenable: 1\n\n[IPSET management]\n\n10.0.0.0/24\n")
    c.write("nodes/pve2/host.fw", "[OPTIONS]\n\nnftables: 1\n")
    (c.pve / "firewall/101.fw").unlink()
    out = io.StringIO()
    assert cli.main(["check"], environ=env, out=out) == 0, out.getvalue()


def test_check_names_this_nodes_old_proxmox_firewall(tmp_path):
    """check sees only this node's packages: pve1's proxmox-firewall is
    checked, pve2's is noted as not checked from here."""
    c = Cluster(tmp_path)
    for n in ("pve1", "pve2"):
        c.write(f"nodes/{n}/host.fw", "[OPTIONS]\n\nnftables: 1\n")
    c.proxmox_firewall("1.1.2")
    env = {k: v for k, v in c.env.items() if k.startswith("PVE_MICROSEG_")}
    out = io.StringIO()
    rc = cli.main(["check", "--output-format", "json"], environ=env, out=out)
    data = json.loads(out.getvalue())
    assert rc == 10 and data["node"] == "pve1" and data["proxmox-firewall"] == "1.1.2"
    warning = [f for f in data["findings"] if f["severity"] == "warning"]
    assert len(warning) == 1 and warning[0]["file"] == "nodes/pve1/host.fw"
    assert warning[0]["message"].startswith("pve1: proxmox-firewall 1.1.2 is older than 1.2.0")
    assert "IP part of ipfilter does not filter" in warning[0]["message"]
    assert [(f["file"], f["severity"]) for f in data["findings"] if "pve2" in f["message"]] == [
        ("nodes/pve2/host.fw", "info")]
    out = io.StringIO()
    assert cli.main(["check"], environ=env, out=out) == 10
    text = out.getvalue().splitlines()
    assert any(l.startswith("nodes/pve1/host.fw:0: warning: pve1: proxmox-firewall 1.1.2 is older") for l in text)
    assert any(l.startswith("nodes/pve2/host.fw:0: info: pve2: nftables: 1; its proxmox-firewall is not checked")
               for l in text)
    c.proxmox_firewall("1.2.0")
    out = io.StringIO()
    assert cli.main(["check"], environ=env, out=out) == 0, out.getvalue()
    assert "proxmox-firewall 1.2.0" not in out.getvalue()
    c.proxmox_firewall(None)
    out = io.StringIO()
    assert cli.main(["check"], environ=env, out=out) == 10
    assert "pve1: nftables: 1 is set in its host.fw, but proxmox-firewall is not installed" in out.getvalue()
    c.write("nodes/pve1/host.fw", "[OPTIONS]\n\nnftables: 0\n")          # iptables: nothing to say of pve1
    out = io.StringIO()
    assert cli.main(["check"], environ=env, out=out) == 0
    assert "pve1" not in out.getvalue()
    c.write("nodes/pve1/host.fw", "[OPTIONS]\n\nnftables: 1\n")
    c.dpkg_status.unlink()
    out = io.StringIO()
    assert cli.main(["check"], environ=env, out=out) == 0               # cannot tell: a note, not a warning
    assert "info: pve1: nftables: 1, but its proxmox-firewall is unknown: " in out.getvalue()


def _check(c):
    out = io.StringIO()
    env = {k: v for k, v in c.env.items() if k.startswith("PVE_MICROSEG_")}
    rc = cli.main(["check", "--output-format", "json"], environ=env, out=out)
    return rc, json.loads(out.getvalue())["findings"]


@pytest.mark.parametrize("name,key", [("e1000e.conf", "net0"), ("net31.conf", "net31")])
def test_check_names_a_guest_file_that_freezes_its_node(tmp_path, name, key):
    c = Cluster(tmp_path)
    c.write("firewall/cluster.fw", "[OPTIONS]\n\nenable: 1\n\n[IPSET management]\n\n10.0.0.0/24\n")
    c.write("nodes/pve2/host.fw", "[OPTIONS]\n\nnftables: 1\n")
    c.add_guest(120, (FIXTURES / "derived/qemu-server" / name).read_text(), node="pve2", hookscript=False)
    c.add_guest(121, (FIXTURES / "qemu-server/src/test/parse-config-input/cloudinit-snapshot.conf").read_text(),
                node="pve2", hookscript=False)
    c.add_guest(122, (FIXTURES / "derived/qemu-server" / name).read_text(), node="pve1", hookscript=False)
    for vmid in (120, 121, 122):
        c.write(f"firewall/{vmid}.fw", "[OPTIONS]\n\nenable: 1\n")
    rc, findings = _check(c)
    assert rc == 10
    errors = [f for f in findings if f["severity"] == "error"]
    assert [(f["file"], f["line"]) for f in errors] == [("firewall/120.fw", 0)]
    m = errors[0]["message"]
    assert f"guest 120 {key} (nodes/pve2/qemu-server/120.conf:" in m
    assert "stops updating the firewall of pve2" in m
    # on pve1 (pve-firewall) the same config is only info; 121 reads fine
    info = [f for f in findings if f["file"] == "firewall/122.fw"]
    assert [f["severity"] for f in info] == ["info"] and "with nftables: 1" in info[0]["message"]
    assert not any(f["file"] == "firewall/121.fw" for f in findings)
    # without the .fw file nothing freezes
    (c.pve / "firewall/120.fw").unlink()
    (c.pve / "firewall/122.fw").unlink()
    rc, findings = _check(c)
    assert rc == 0, findings


def test_lint_guest_config_is_pure():
    gc = fwlint.GuestConfig("firewall/101.fw", 101, "pve1", "lxc", "nodes/pve1/lxc/101.conf",
                            "net0: name=eth0,hwaddr=BC:24:11:47:83:11,ip=dhcp,type=veth\n")
    assert fwlint.lint_guest_config(gc, True) == []
    bad = fwlint.GuestConfig(**{**gc.__dict__, "text": "net31: name=eth0,hwaddr=BC:24:11:47:83:11,type=veth\n"})
    [finding] = fwlint.lint_guest_config(bad, True)
    assert finding.severity == "error" and "guest 101 net31 (nodes/pve1/lxc/101.conf:1)" in finding.message


# ---------------------------------------------------------------- issue 12: every file, every refusal, linear time

def _cluster(tmp_path):
    c = Cluster(tmp_path)
    c.write("firewall/cluster.fw", "[OPTIONS]\n\nenable: 1\n\n[IPSET management]\n\n10.0.0.0/24\n")
    c.write("microseg.yaml", "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n    gateway-ip: 10.100.0.1\n")
    return c


SHADOWED = "[RULES]\nIN ACCEPT -p tcp -dport 22\nIN DROP -p tcp -dport 22\n"


def test_check_reports_an_unreadable_file_and_goes_on(tmp_path, monkeypatch):
    from pve_microseg.edges import files
    c = _cluster(tmp_path)
    (c.pve / "firewall/102.fw").mkdir()                              # not a regular file
    denied = c.write("firewall/103.fw", "[OPTIONS]\nenable: 1\n")
    c.write("firewall/104.fw", SHADOWED)
    c.write("nodes/pve2/host.fw", SHADOWED)
    real = files.os.open

    def refuse(path, *a, **kw):
        if str(path) == str(denied):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **kw)
    monkeypatch.setattr(files.os, "open", refuse)
    rc, findings = _check(c)
    got = {(f["file"], f["severity"]): f["message"] for f in findings}
    assert rc == 10
    assert "not checked: " in got[("firewall/102.fw", "error")] and "not a regular file" in got[
        ("firewall/102.fw", "error")]
    assert "cannot read: Permission denied" in got[("firewall/103.fw", "error")]
    assert "never matches" in got[("firewall/104.fw", "warning")]          # the rest still checked
    assert "never matches" in got[("nodes/pve2/host.fw", "warning")]


def test_check_reports_what_pre_start_refuses(tmp_path):
    c = _cluster(tmp_path)
    c.install_hookscript()
    c.add_vm(101, {0: "virtio=BC:24:11:2C:69:EC,bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    c.write("firewall/101.fw", "[OPTIONS]\r\nenable: 1\r\n\r\n[RULES]\r\nIN ACCEPT -p tcp -dport 22\r\n")
    c.add_vm(102, {0: "virtio=ZZ:24:11:2C:69:ED,bridge=web,firewall=1"}, {0: "ip=10.100.0.6/24"})
    c.write("firewall/102.fw", "[OPTIONS]\nenable: 1\n")
    rc, findings = _check(c)
    got = {f["file"]: f for f in findings if f["severity"] == "error"}
    assert rc == 10
    for vmid in (101, 102):
        start = c.qm("start", vmid)
        assert start.returncode != 0                        # pre-start refuses both guests
        refusal = start.stderr.split("not started: ", 1)[1].splitlines()[0]
        refusal = refusal.removesuffix(" (microseg.yaml could not be read, so the default fail-closed applies)")
        assert refusal.split(": ", 1)[-1] in got[f"firewall/{vmid}.fw"]["message"], (refusal, got)
    assert got["firewall/101.fw"]["line"] == 1 and "CR (Windows) line endings" in got["firewall/101.fw"]["message"]
    assert "refuses to start guest 102" in got["firewall/102.fw"]["message"]


def _events(fn, stop_after):
    """The Python and C calls `fn()` makes (deterministic); stops (None)
    once more than `stop_after`, so that a quadratic version fails fast."""
    import sys

    class Enough(Exception):
        pass
    count = [0]

    def profile(frame, event, arg):
        if event in ("call", "c_call"):
            count[0] += 1
            if count[0] > stop_after:
                raise Enough()
    sys.setprofile(profile)
    try:
        fn()
    except Enough:
        return None
    finally:
        sys.setprofile(None)
    return count[0]


SHAPES = {
    "distinct rules": lambda n: "[RULES]\n" + "".join(
        f"IN ACCEPT -p tcp -dport {i % 60000 + 1} -source 10.{i // 65536}.{i // 256 % 256}.{i % 256}\n"
        for i in range(n)),
    "identical rules": lambda n: "[RULES]\n" + "IN DROP -p tcp -dport 22\n" * n,
    "ipsets": lambda n: "".join(f"[IPSET s{i}]\n10.0.0.{i % 250}\n" for i in range(n)),
    "ipfilter sets": lambda n: "".join(f"[IPSET ipfilter-net{i}]\n10.{i // 250 % 250}.{i % 250}.0/24\n"
                                       for i in range(n)),
    "disabled rules": lambda n: "[RULES]\n" + "".join(f"|IN ACCEPT -p tcp -dport {i % 60000 + 1}\n"
                                                      for i in range(n)),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_check_time_grows_linearly_with_the_file(shape, monkeypatch):
    """Issue 12: 2,000 rules took ~8 s, 30,000 did not finish in 10 minutes.
    Counted in calls, not seconds: 8 times the file may cost at most 12 times
    the calls (a quadratic part costs 64 times and is stopped early).  The
    comparison budget is made small so the test is quick (the shape of the
    growth is what is tested; test_shadowing_compares_... tests the budget)."""
    monkeypatch.setattr(fwlint, "MAX_COMPARISONS", 5000, raising=False)
    small, large = 500, 4000
    run = lambda n: lambda: fwlint.lint_cluster([("firewall/101.fw", SHAPES[shape](n), "guest")],  # noqa: E731
                                                [], ["pve1"])
    base = _events(run(small), stop_after=10 ** 8)
    big = _events(run(large), stop_after=12 * base)
    assert big is not None, f"{shape}: {large} lines cost more than 12 times {small} ({base} calls)"


def test_shadowing_compares_a_bounded_number_of_rule_pairs(monkeypatch):
    count = [0]
    real = fwlint.covers

    def counting(a, b):
        count[0] += 1
        if count[0] > fwlint.MAX_COMPARISONS:
            raise AssertionError("more rule pairs compared than MAX_COMPARISONS")
        return real(a, b)
    monkeypatch.setattr(fwlint, "covers", counting)
    text = SHAPES["distinct rules"](2000) + "IN DROP -p tcp -dport 5\nIN ACCEPT -p tcp -dport 22\n" \
        "IN ACCEPT -p tcp -dport 22\n"
    findings = fwlint.lint_file("firewall/101.fw", text, "guest")
    cut = [f for f in findings if f.severity == "info" and "was not checked" in f.message]
    assert len(cut) == 1 and cut[0].line > 400
    # identical rules are still found after the cut
    assert any(f.line == 2004 and "line 2003" in f.message for f in findings if f.severity == "warning")


def test_shadowing_finds_the_first_covering_rule_as_before():
    text = ("[RULES]\nIN ACCEPT -p tcp -dport 1:100\nIN DROP -p tcp -dport 22\nIN ACCEPT\n"
            "IN DROP -p tcp -dport 22\nIN ACCEPT -p tcp -dport 22 -source 10.0.0.0/8\n")
    warnings = {f.line: f.message for f in lint(text) if f.severity == "warning"}
    assert "line 2 " in warnings[3] and "line 2 " in warnings[5] and "line 2 " in warnings[6]
    assert 4 not in warnings
