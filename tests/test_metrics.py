"""`pve-microseg metrics`: the Prometheus textfile (policy/metrics.py,
flows/metrics.py): the exposition format, checked by a strict parser here
and by `promtool check metrics`; hostile label values; a failed refresh
(pve_microseg_up 0, never a traceback, never an old file looking fresh);
the atomic write; the command line; the systemd units."""

import io
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import FakeNft, unavailable
from pve_microseg.edges import state
from pve_microseg.edges.paths import Paths
from pve_microseg.entry import cli
from pve_microseg.flows import metrics as flow, reconcile
from pve_microseg.policy import metrics as policy
from pve_microseg.policy.ruleset import DROP_CLASSES

REPO = Path(__file__).resolve().parent.parent
CONFIG = "bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n"

# ------------------------------------------------------------ a strict parser

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_VALUE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z|[+-]Inf\Z|NaN\Z")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _labels(text, where):
    """'a="x",b="y"}' rest -> ({a: x, b: y}, rest after the brace)."""
    labels, i = {}, 0
    while True:
        if text[i] == "}":
            return labels, text[i + 1:]
        m = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"").match(text, i)
        assert m, f"{where}: bad label at {text[i:]!r}"
        name, i, value = m.group(1), m.end(), []
        assert not name.startswith("__") and name not in labels, f"{where}: label {name}"
        while text[i] != '"':
            if text[i] == "\\":
                assert text[i + 1] in _ESCAPES, f"{where}: bad escape \\{text[i + 1]}"
                value.append(_ESCAPES[text[i + 1]])
                i += 2
            else:
                value.append(text[i])
                i += 1
        labels[name] = "".join(value)
        i += 1
        if text[i] == ",":
            i += 1
        else:
            assert text[i] == "}", f"{where}: expected , or }} after a label"


def parse(text):
    """{family: {"type", "help", "samples": {frozenset(labels): float}}} of a
    text exposition (0.0.4), asserting what node_exporter's parser and the
    Prometheus conventions require; comments must not look like HELP/TYPE."""
    assert text.endswith("\n") and "\r" not in text and "\0" not in text
    text.encode("utf-8")
    fams, current, done = {}, None, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        assert line, f"{where}: empty line"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert _NAME.match(name), where
                if current != name:
                    assert name not in done, f"{where}: family {name} not contiguous"
                    if current:
                        done.add(current)
                    current = name
                fam = fams.setdefault(name, {"type": None, "help": None, "samples": {}})
                key = parts[1].lower()
                assert fam[key] is None and not fam["samples"], f"{where}: {parts[1]} twice or after samples"
                fam[key] = parts[3] if len(parts) > 3 else ""
                if key == "type":
                    assert fam["type"] in ("counter", "gauge"), where
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{|\s)", line)
        assert m, f"{where}: no metric name"
        name, rest = m.group(1), line[m.end(1):]
        labels = {}
        if rest.startswith("{"):
            labels, rest = _labels(rest[1:], where)
        assert rest.startswith(" "), where
        fields = rest[1:].split(" ")
        assert len(fields) == 1, f"{where}: a timestamp (node_exporter refuses them) or junk"
        assert _VALUE.match(fields[0]), f"{where}: value"
        assert name == current and fams[name]["type"], f"{where}: sample outside its family's TYPE"
        key = frozenset(labels.items())
        assert key not in fams[name]["samples"], f"{where}: duplicate series"
        fams[name]["samples"][key] = float(fields[0])
    for name, fam in fams.items():
        assert name.startswith("pve_microseg_") and fam["help"], name
        assert (fam["type"] == "counter") == name.endswith("_total"), name
    return fams


def sample(fams, name, **labels):
    return fams[name]["samples"][frozenset(labels.items())]


# ------------------------------------------------------------ promtool

def promtool():
    """promtool: on PATH, or where tests/tools/get-promtool.sh extracts it."""
    for candidate in (shutil.which("promtool"), REPO / "build/promtool/promtool"):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    unavailable("promtool not found: run tests/tools/get-promtool.sh (apt-get download prometheus; "
                "make unit/check do it)")


def promtool_check(text):
    proc = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------ a node

class MetricsNft:
    """The kernel as `status --local` reads it: vnet0's chains, drop counters
    in a set (nftables 1.1) and a meter (1.0.6), bindings."""

    def __init__(self, ports=None, fail=None):
        self.ports = ports or {}        # {class: {port: (packets, bytes)}}
        self.fail = fail

    def __call__(self, dry_run=False):
        if self.fail:
            raise self.fail
        return self

    def list_table(self, family, table):
        objs = [{"chain": {"name": "fwd-vnet0"}}, {"chain": {"name": "pre-vnet0"}}]
        for cls, counts in self.ports.items():
            objs.append({"set": {"family": "bridge", "table": "pve_microseg", "name": f"drops-{cls}",
                                 "elem": [{"elem": {"val": p, "counter": {"packets": a, "bytes": b}}}
                                          for p, (a, b) in counts.items()]}})
        return objs

    def list_meters(self, family, table):
        return []

    def set_elements(self, family, table, name):
        return [{"concat": ["tap101i0", "bc:24:11:00:00:01"]}] if name == "bind-mac" else []


def node_tree(fake_node):
    n = fake_node
    n.running_config()
    n.write_config(CONFIG)
    n.add_bridge("vnet0")
    for port in ("tap101i0", "fwpr102p1", "eth0"):
        (n.paths.sys_class_net / "vnet0" / "brif" / port).mkdir(parents=True)
    n.env["PVE_MICROSEG_TEXTFILE_DIR"] = str(n.root / "textfile")
    n.paths = Paths.from_env(n.env)
    reconcile.apply(n.paths, FakeNft())             # the markers: rules loaded from this configuration
    return n


DROPS = {"mac-binding": {"tap101i0": (7, 420)}, "guest-to-guest": {"eth0": (3, 180), "tap101i0": (40, 2400)}}


def test_the_textfile_of_a_node(fake_node):
    n = node_tree(fake_node)
    result = flow.metrics(n.paths, MetricsNft(DROPS), clock=lambda: 1700000000.5)
    assert result.exit == 0 and result.warnings == [] and result.data["up"] is True
    fams = parse(result.data["text"])
    assert sample(fams, "pve_microseg_up") == 1
    assert sample(fams, "pve_microseg_textfile_timestamp_seconds") == 1700000000.5
    assert sample(fams, "pve_microseg_bridge_present", bridge="vnet0") == 1
    assert sample(fams, "pve_microseg_bridge_rules_loaded", bridge="vnet0") == 1
    assert sample(fams, "pve_microseg_bridge_unprotected", bridge="vnet0") == 0
    assert sample(fams, "pve_microseg_bridge_rules_current", bridge="vnet0") == 1
    (info,) = fams["pve_microseg_bridge_info"]["samples"]
    assert dict(info)["kind"] == "vnet" and dict(info)["bridge"] == "vnet0" and dict(info)["zone"]
    assert sample(fams, "pve_microseg_guest_ports", bridge="vnet0", state="protected") == 1
    assert sample(fams, "pve_microseg_guest_ports", bridge="vnet0", state="unbound") == 1
    assert sample(fams, "pve_microseg_guest_ports", bridge="vnet0", state="no_rules") == 0
    assert sample(fams, "pve_microseg_guest_port_unbound", vmid="102", nic="net1", port="fwpr102p1",
                  bridge="vnet0") == 1
    assert sample(fams, "pve_microseg_port_bindings") == 1
    drops = dict(vmid="101", nic="net0", port="tap101i0", bridge="vnet0")
    assert sample(fams, "pve_microseg_drops_total", **drops, **{"class": "guest-to-guest"}) == 40
    assert sample(fams, "pve_microseg_drop_bytes_total", **drops, **{"class": "mac-binding"}) == 420
    # the uplink (a frame from another node): no VMID, no NIC, its port
    assert sample(fams, "pve_microseg_drops_total", vmid="", nic="", port="eth0", bridge="vnet0",
                  **{"class": "guest-to-guest"}) == 3
    (cfg,) = fams["pve_microseg_config_info"]["samples"]
    assert re.fullmatch(r"[0-9a-f]{16}", dict(cfg)["digest"])
    assert sample(fams, "pve_microseg_config_timestamp_seconds") > 0
    promtool_check(result.data["text"])


def test_a_configuration_change_not_yet_applied_shows(fake_node):
    n = node_tree(fake_node)
    before = parse(flow.metrics(n.paths, MetricsNft()).data["text"])
    n.write_config(CONFIG.replace("00:00:5e:00:01:64", "00:00:5e:00:01:65"))
    after = parse(flow.metrics(n.paths, MetricsNft()).data["text"])
    assert sample(after, "pve_microseg_bridge_rules_current", bridge="vnet0") == 0
    assert set(before["pve_microseg_config_info"]["samples"]) != set(after["pve_microseg_config_info"]["samples"])
    reconcile.apply(n.paths, FakeNft())
    again = parse(flow.metrics(n.paths, MetricsNft()).data["text"])
    assert sample(again, "pve_microseg_bridge_rules_current", bridge="vnet0") == 1
    assert again["pve_microseg_config_info"] == after["pve_microseg_config_info"]


def test_log_on_is_a_gauge_and_changes_the_digest(fake_node):
    n = node_tree(fake_node)
    before = parse(flow.metrics(n.paths, MetricsNft()).data["text"])
    assert sample(before, "pve_microseg_drop_log_enabled") == 0
    n.write_config("log: on\n" + CONFIG)
    after = parse(flow.metrics(n.paths, MetricsNft()).data["text"])
    assert sample(after, "pve_microseg_drop_log_enabled") == 1
    assert set(before["pve_microseg_config_info"]["samples"]) != set(after["pve_microseg_config_info"]["samples"])
    promtool_check(flow.metrics(n.paths, MetricsNft()).data["text"])


def test_the_digest_ignores_where_a_bridge_was_read_and_its_order(fake_node):
    n = node_tree(fake_node)
    from pve_microseg.edges import pveconf
    import dataclasses
    bridges = pveconf.config(n.paths).bridges
    moved = [dataclasses.replace(b, source="elsewhere:9") for b in reversed(bridges)]
    assert policy.config_digest(bridges) == policy.config_digest(moved)


def test_a_bridge_without_rules_is_unprotected(fake_node):
    n = node_tree(fake_node)
    state.forget(n.paths)

    class NoTable(MetricsNft):
        def list_table(self, family, table):
            return None
    fams = parse(flow.metrics(n.paths, NoTable()).data["text"])
    assert sample(fams, "pve_microseg_up") == 1
    assert sample(fams, "pve_microseg_bridge_unprotected", bridge="vnet0") == 1
    assert sample(fams, "pve_microseg_guest_ports", bridge="vnet0", state="no_rules") == 2
    assert fams["pve_microseg_bridge_rules_current"]["samples"] == {}
    assert fams["pve_microseg_drops_total"]["samples"] == {}


# ------------------------------------------------------------ hostile values

HOSTILE = ['x"} 1\npve_microseg_up 1\n#', "back\\slash\\", 'quote"', "new\nline", "\\n", "tab\there",
           "ünï©ødé", "\udcff\udc80", "", "}", "{a=\"b\"}", "# TYPE pve_microseg_up counter"]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_label_values_stay_label_values(value):
    snap = policy.Snapshot(
        1.0, 0.1, "0.4.0", node=value,
        bridges=(policy.BridgeState(value, True, value, True, True, True),),
        ports=(policy.PortState("tap7i0", value, value, "unbound"),),
        drops=({"vmid": 7, "nic": "net0", "port": value, "bridge": value, "class": "rogue-ra",
                "packets": 1, "bytes": 60},),
        config_digest=value)
    text = policy.render(snap)
    fams = parse(text)
    shown = value.encode("utf-8", "backslashreplace").decode()        # not UTF-8: its escape, as text
    assert sample(fams, "pve_microseg_info", node=shown, version="0.4.0") == 1
    assert sample(fams, "pve_microseg_bridge_info", bridge=shown, kind="vnet", zone=shown) == 1
    assert sample(fams, "pve_microseg_drops_total", vmid="7", nic="net0", port=shown, bridge=shown,
                  **{"class": "rogue-ra"}) == 1
    assert sample(fams, "pve_microseg_up") == 1 and len(fams["pve_microseg_up"]["samples"]) == 1
    assert set(fams) <= {f.name for f in policy.families(policy.Snapshot(0.0)).values()} | {
        f.name for f in policy.families(snap).values()}
    promtool_check(text)


@pytest.mark.parametrize("error", ["line one\nline two", 'nft: "x"\r\n# TYPE pve_microseg_up counter\npve_microseg_up 1',
                                   "\udcff bytes"], ids=repr)
def test_a_hostile_error_stays_one_comment(error):
    text = policy.render(policy.Snapshot(2.0, node="pve1", error=error))
    fams = parse(text)
    assert sample(fams, "pve_microseg_up") == 0
    comments = [line for line in text.splitlines() if line.startswith("# refresh failed")]
    assert len(comments) == 1 and comments[0] == "# refresh failed: " + " ".join(
        error.encode("utf-8", "backslashreplace").decode().split())
    assert [line for line in text.splitlines() if line.startswith("pve_microseg_up")] == ["pve_microseg_up 0"]
    promtool_check(text)


def test_drop_rows_of_an_unknown_class_or_repeated_are_not_series():
    row = {"vmid": None, "nic": None, "port": "eth0", "bridge": None, "class": "guest-to-guest",
           "packets": 5, "bytes": 300}
    text = policy.render(policy.Snapshot(1.0, drops=(row, dict(row, packets=9), dict(row, **{"class": "nope"}))))
    fams = parse(text)
    assert list(fams["pve_microseg_drops_total"]["samples"].values()) == [5]
    assert set(DROP_CLASSES) >= {dict(k)["class"] for k in fams["pve_microseg_drop_bytes_total"]["samples"]}


# ------------------------------------------------------------ failures

def test_nftables_unreadable_is_up_0_with_the_reason(fake_node):
    n = node_tree(fake_node)
    from pve_microseg.model.errors import NftablesUnavailable
    result = flow.metrics(n.paths, MetricsNft(fail=NftablesUnavailable("python3-nftables is not installed")))
    fams = parse(result.data["text"])
    assert sample(fams, "pve_microseg_up") == 0 and result.data["up"] is False
    assert result.exit != 0 and "python3-nftables is not installed" in result.warnings[0]
    assert "pve_microseg_bridge_present" not in fams and "pve_microseg_drops_total" not in fams
    assert "# refresh failed: cannot read nftables: python3-nftables is not installed" in result.data["text"]
    promtool_check(result.data["text"])


def test_an_invalid_configuration_is_up_0(fake_node):
    n = node_tree(fake_node)
    n.write_config("bridges:\n  vnet0:\n    gateway-mac: nonsense\n")
    result = flow.metrics(n.paths, MetricsNft())
    assert sample(parse(result.data["text"]), "pve_microseg_up") == 0
    assert result.exit == 2 and "microseg.yaml" in result.warnings[0]


def run_cli(n, *argv, nft=None, monkeypatch=None):
    if nft is not None:
        monkeypatch.setattr(cli, "Nft", nft)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    rc = cli.main(["metrics", *argv], environ=n.env, out=out)
    return rc, out.getvalue(), err.getvalue()


def test_a_failed_refresh_never_leaves_an_old_file_looking_fresh(fake_node, monkeypatch):
    n = node_tree(fake_node)
    target = n.root / "textfile" / "pve_microseg.prom"
    target.parent.mkdir()
    assert run_cli(n, "--textfile", nft=MetricsNft(DROPS), monkeypatch=monkeypatch)[0] == 0
    assert sample(parse(target.read_text()), "pve_microseg_up") == 1

    class Broken(MetricsNft):
        def list_table(self, family, table):
            raise KeyError("a bug")                  # an internal error, not a MicrosegError
    rc, out, err = run_cli(n, "--textfile", nft=Broken(), monkeypatch=monkeypatch)
    assert rc == 1 and "Traceback" not in err and "internal error KeyError" in err and out == ""
    fams = parse(target.read_text())
    assert sample(fams, "pve_microseg_up") == 0 and "pve_microseg_drops_total" not in fams
    promtool_check(target.read_text())


def test_the_textfile_is_written_atomically_0644(fake_node, monkeypatch):
    n = node_tree(fake_node)
    d = n.root / "textfile"
    d.mkdir()
    target = d / "pve_microseg.prom"
    target.write_text("old\n")
    old_inode = target.stat().st_ino
    umask = os.umask(0o077)
    try:
        rc, out, err = run_cli(n, "--textfile", str(target), nft=MetricsNft(), monkeypatch=monkeypatch)
    finally:
        os.umask(umask)
    assert rc == 0 and out == "" and err == ""
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_ino != old_inode     # a new file, renamed over
    assert sorted(p.name for p in d.iterdir()) == ["pve_microseg.prom"]    # no temporary file left
    parse(target.read_text())

    # the temporary file never ends in .prom (node_exporter would read it half written)
    from pve_microseg.edges import files
    assert not files.temporary(target).name.endswith(".prom")

    # a write that fails leaves the old file and names it
    seen = {}

    def failing(path, text, mode=0o600, **kw):
        seen["mode"] = mode
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files, "write_atomic", failing)
    rc, out, err = run_cli(n, "--textfile", str(target), nft=MetricsNft(), monkeypatch=monkeypatch)
    assert rc == 1 and f"{target}: cannot write the textfile: No space left on device" in err
    assert "Traceback" not in err and seen["mode"] == 0o644


def test_a_missing_directory_is_an_error_naming_the_file(fake_node, monkeypatch):
    n = node_tree(fake_node)
    target = n.root / "nowhere" / "pve_microseg.prom"
    rc, out, err = run_cli(n, "--textfile", str(target), nft=MetricsNft(), monkeypatch=monkeypatch)
    assert rc == 1 and str(target) in err and "Traceback" not in err


# ------------------------------------------------------------ the command line

def test_cli_prints_to_stdout_and_checks_the_file_name(fake_node, monkeypatch):
    n = node_tree(fake_node)
    rc, out, err = run_cli(n, nft=MetricsNft(DROPS), monkeypatch=monkeypatch)
    assert rc == 0 and sample(parse(out), "pve_microseg_up") == 1
    rc, out, err = run_cli(n, "--textfile", str(n.root / "x.txt"), monkeypatch=monkeypatch)
    assert rc == 2 and "ending in .prom" in err
    rc, out, err = run_cli(n, "--textfile", str(n.root / ".prom"), monkeypatch=monkeypatch)
    assert rc == 2
    assert "metrics" in cli.build_parser().format_help()


def test_cli_not_root_says_so(fake_node, monkeypatch):
    n = node_tree(fake_node)
    from pve_microseg.edges import node
    from pve_microseg.model.errors import NftablesError
    monkeypatch.setattr(node, "is_root", lambda: False)
    rc, out, err = run_cli(n, nft=MetricsNft(fail=NftablesError("Operation not permitted")),
                           monkeypatch=monkeypatch)
    assert rc == 1 and sample(parse(out), "pve_microseg_up") == 0
    assert "needs root" in err and "Traceback" not in err


def test_the_default_textfile_is_node_exporters_directory():
    assert Paths.from_env({}).textfile == Path("/var/lib/prometheus/node-exporter/pve_microseg.prom")


# ------------------------------------------------------------ systemd units

def unit(name):
    out = {}
    for line in (REPO / "debian" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_units_refresh_the_default_textfile():
    service, timer = unit("pve-microseg-metrics.service"), unit("pve-microseg-metrics.timer")
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == [f"/usr/sbin/pve-microseg metrics --textfile {Paths.from_env({}).textfile}"]
    assert service["ConditionPathIsDirectory"] == [str(Paths.from_env({}).textfile_dir)]
    assert str(Paths.from_env({}).textfile_dir) in service["ReadWritePaths"][0]
    assert timer["WantedBy"] == ["timers.target"] and timer["OnUnitActiveSec"] == ["1min"]
