"""Package tier: build the .deb the way `make deb` does and check what it ships.

The package is built once per session (`make deb`, under fakeroot).  Outside
CI a missing build tool skips these tests; with CI=true it fails them, so a
CI image that lacks the tools cannot pass silently.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYLIB = "usr/lib/python3/dist-packages/pve_microseg"
CLI = "usr/sbin/pve-microseg"
HOOKS = ("etc/network/if-up.d/pve-microseg", "etc/network/if-down.d/pve-microseg")
HOOKSCRIPT = "usr/share/pve-microseg/pve-microseg-hookscript"
REQUIRED_DEPENDS = ("python3-yaml", "python3-nftables", "nftables", "ifupdown2")
# Everything the package may ship lives under one of these.
ALLOWED_PREFIXES = (
    "etc/network/if-up.d/",
    "etc/network/if-down.d/",
    PYLIB + "/",
    CLI,
    "usr/share/doc/pve-microseg/",
    "usr/share/man/man8/pve-microseg.8.gz",
    "usr/share/man/man8/pve-microseg-hookscript.8.gz",
    HOOKSCRIPT,
    "usr/lib/systemd/system/pve-microseg.service",
    "usr/lib/systemd/system/pve-microseg-metrics.service",
    "usr/lib/systemd/system/pve-microseg-metrics.timer",
    "usr/lib/udev/rules.d/60-pve-microseg.rules",
    "usr/share/bash-completion/completions/pve-microseg",
)
BUILD_TOOLS = ("make", "git", "dpkg-buildpackage", "dpkg-deb", "fakeroot", "dh", "dh_python3")

from conftest import unavailable  # noqa: E402  skip, or fail under CI=true


def need_tools(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        unavailable(f"missing tools: {', '.join(missing)} (run `make deps`)")


def need_python_debian():
    try:
        import debian.changelog  # noqa: F401
        import debian.debfile  # noqa: F401
    except ImportError:
        unavailable("python3-debian is not installed (run `make deps`)")


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def untracked_sources():
    """Source files `make deb` will leave out because git does not track them."""
    r = run("git", "-C", str(REPO), "ls-files", "--others", "--exclude-standard",
            "--", "Makefile", "debian", "lib", "bin", "ifupdown", "hookscripts")
    return r.stdout.split() if r.returncode == 0 else []


def hint():
    files = untracked_sources()
    if not files:
        return ""
    return ("\n`make deb` packages only git-tracked files; untracked: "
            + " ".join(files) + " (git add them)")


def repo_modules():
    """Every module of the library, as a path under pve_microseg/ (layers included)."""
    lib = REPO / "lib" / "pve_microseg"
    return sorted(str(p.relative_to(lib)) for p in lib.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.fixture(scope="session")
def deb():
    need_tools(*BUILD_TOOLS)
    need_python_debian()
    from debian.changelog import Changelog

    with open(REPO / "debian" / "changelog") as f:
        version = str(Changelog(f, max_blocks=1).version)
    r = run("make", "-C", str(REPO), "deb")
    if r.returncode != 0:
        pytest.fail(f"`make deb` failed:\n{r.stdout}\n{r.stderr}{hint()}")
    path = REPO / "dist" / f"pve-microseg_{version}_all.deb"
    assert path.is_file(), f"`make deb` did not produce {path}{hint()}"
    return path


@pytest.fixture(scope="session")
def debfile(deb):
    from debian.debfile import DebFile

    return DebFile(str(deb))


@pytest.fixture(scope="session")
def members(debfile):
    """Data archive entries by path without the leading './'."""
    # str(): python3-debian 1.0 (Debian 13) names members with an unhashable path type
    return {str(m.name).removeprefix("./"): m for m in debfile.data.tgz().getmembers()}


@pytest.fixture(scope="session")
def extracted(deb, tmp_path_factory):
    root = tmp_path_factory.mktemp("pkgroot")
    r = run("dpkg-deb", "-x", str(deb), str(root))
    assert r.returncode == 0, r.stderr
    return root


def test_control_fields(debfile):
    from debian.changelog import Changelog
    from debian.deb822 import PkgRelation

    control = debfile.debcontrol()
    with open(REPO / "debian" / "changelog") as f:
        version = str(Changelog(f, max_blocks=1).version)
    assert control["Package"] == "pve-microseg"
    assert control["Version"] == version
    assert control["Architecture"] == "all"
    assert control["Section"] == "net"
    assert control["Priority"] == "optional"
    assert control["Maintainer"]
    assert control["Description"].splitlines()[0].strip()

    depends = {alt["name"] for rel in PkgRelation.parse_relations(control["Depends"])
               for alt in rel}
    for name in REQUIRED_DEPENDS:
        assert name in depends, f"Depends lacks {name}: {control['Depends']}"
    # ${python3:Depends} was filled in by dh_python3
    assert "python3" in depends, f"Depends lacks python3: {control['Depends']}"


def test_contents_owned_by_root(members):
    wrong = [f"{name} {m.uname}({m.uid}):{m.gname}({m.gid})"
             for name, m in members.items()
             if (m.uname, m.uid, m.gname, m.gid) != ("root", 0, "root", 0)]
    assert not wrong, "not owned by root:root: " + ", ".join(wrong)


def test_contents_modes(members):
    for path in (CLI, *HOOKS, HOOKSCRIPT):
        assert path in members, f"{path} is not in the package{hint()}"
        m = members[path]
        assert m.isfile(), f"{path} is not a regular file"
        assert stat.S_IMODE(m.mode) == 0o755, f"{path} has mode {stat.S_IMODE(m.mode):04o}"
    for name in repo_modules():
        path = f"{PYLIB}/{name}"
        assert path in members, f"{path} is not in the package{hint()}"
        assert stat.S_IMODE(members[path].mode) == 0o644, (
            f"{path} has mode {stat.S_IMODE(members[path].mode):04o}")


def test_ships_nothing_unexpected(members):
    stray = [name for name, m in members.items()
             if not m.isdir() and not name.startswith(ALLOWED_PREFIXES)]
    assert not stray, f"unexpected files in the package: {stray}"
    compiled = [name for name in members if "__pycache__" in name or name.endswith(".pyc")]
    assert not compiled, f"byte code is compiled at install time, not shipped: {compiled}"


def test_manpage(members):
    assert "usr/share/man/man8/pve-microseg.8.gz" in members
    assert "usr/share/man/man8/pve-microseg-hookscript.8.gz" in members


def test_hooks_are_conffiles(debfile):
    conffiles = debfile.control.get_content("conffiles", encoding="utf-8") or ""
    listed = {line.strip() for line in conffiles.splitlines() if line.strip()}
    assert listed == {"/" + h for h in HOOKS}


def test_extracted_files_executable(extracted):
    for path in (CLI, *HOOKS, HOOKSCRIPT):
        f = extracted / path
        assert f.is_file(), f"{path} missing after dpkg-deb -x{hint()}"
        assert stat.S_IMODE(f.stat().st_mode) == 0o755
        assert os.access(f, os.X_OK)
    with open(extracted / CLI, "rb") as f:
        assert f.readline().rstrip() == b"#!/usr/bin/python3"


@pytest.mark.skipif(not repo_modules(), reason="lib/pve_microseg has no modules yet")
def test_extracted_library_imports(extracted):
    """The shipped library imports on its own with Debian's python3."""
    dist_packages = extracted / PYLIB.rsplit("/", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(dist_packages)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = (
        "import importlib, pkgutil, pve_microseg as p\n"
        "print(p.__file__)\n"
        "for m in pkgutil.walk_packages(p.__path__, 'pve_microseg.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(getattr(p, '__version__', ''))\n"
    )
    # cwd outside the repository, so that only the extracted copy is importable
    r = run("/usr/bin/python3", "-c", code, env=env, cwd=str(extracted))
    assert r.returncode == 0, r.stderr
    location, version = r.stdout.splitlines()
    assert Path(location).is_relative_to(dist_packages), location
    if version:
        from debian.changelog import Changelog

        with open(REPO / "debian" / "changelog") as f:
            assert version == str(Changelog(f, max_blocks=1).version), (
                "pve_microseg.__version__ differs from debian/changelog")


def test_lintian_clean(deb):
    need_tools("lintian")
    r = run("lintian", "--display-info", "--pedantic", str(deb))
    tags = [line for line in r.stdout.splitlines() if line[:3] in ("E: ", "W: ")]
    assert not tags, "lintian:\n" + r.stdout


def test_nothing_under_aliased_lib(members):
    """Debian 13's lintian rejects files under /lib (E: aliased-location) and
    dpkg can lose files moved between aliased directories: everything of
    ours lives under /usr/lib or /etc, whichever debhelper built the package."""
    assert not [p for p in members if p.split("/", 1)[0] in ("lib", "bin", "sbin", "lib64")]


def test_dependencies_installable_from_the_archive(deb):
    """The Depends resolve against the Debian archive apt is configured with
    (Debian 12 on the host, Debian 13 in `make unit-trixie`'s chroot), by
    apt's own resolver: installing the .deb is simulated, nothing changes."""
    need_tools("apt-get")
    lists = Path("/var/lib/apt/lists")
    if not any(lists.glob("*_Packages*")):
        unavailable("no apt package lists (apt-get update)")
    r = run("apt-get", "install", "--simulate", "--no-install-recommends", "-q", str(deb))
    assert r.returncode == 0, f"apt-get install --simulate {deb.name}:\n{r.stdout}{r.stderr}"
    assert "pve-microseg" in r.stdout


def test_boot_unit(extracted):
    unit = (extracted / "usr/lib/systemd/system/pve-microseg.service").read_text()
    for line in ("After=pve-cluster.service networking.service", "Before=pve-guests.service",
                 "Type=oneshot", "ExecStart=/usr/sbin/pve-microseg apply", "WantedBy=multi-user.target"):
        assert line in unit


def test_maintainer_scripts(debfile):
    postinst = debfile.control.get_content("postinst", encoding="utf-8")
    prerm = debfile.control.get_content("prerm", encoding="utf-8")
    postrm = debfile.control.get_content("postrm", encoding="utf-8")
    assert "pve-microseg apply" in postinst and "/etc/pve/.version" in postinst
    assert "hookscript install" in postinst
    assert "deb-systemd-helper" in postinst                    # the boot unit is enabled
    assert 'if [ "$1" = remove ]' in prerm and "pve-microseg teardown" in prerm
    assert "rm -rf /var/lib/pve-microseg /run/pve-microseg" in postrm
    assert "/etc/pve" not in postrm.replace("/etc/pve/microseg.yaml (other nodes use it)", "")


def test_metrics_timer_enabled_and_started_its_service_never_by_the_install(debfile, extracted):
    """The timer refreshes node_exporter's textfile; the install enables and
    starts it, and neither enables nor starts the service (only the timer
    runs it), nor starts the boot unit (postinst applies by itself)."""
    postinst = debfile.control.get_content("postinst", encoding="utf-8")
    assert "deb-systemd-helper enable 'pve-microseg-metrics.timer'" in postinst
    assert "deb-systemd-invoke $_dh_action 'pve-microseg-metrics.timer'" in postinst
    assert "'pve-microseg-metrics.service'" not in postinst
    assert "deb-systemd-invoke $_dh_action 'pve-microseg.service'" not in postinst
    service = (extracted / "usr/lib/systemd/system/pve-microseg-metrics.service").read_text()
    assert "[Install]" not in service and "ConditionPathIsDirectory=/var/lib/prometheus/node-exporter" in service
    debctl = debfile.debcontrol()
    assert "prometheus-node-exporter" in debctl["Suggests"]


def test_source_package_lintian_clean(tmp_path):
    """The source package (what a Debian upload would carry) is lintian-clean too."""
    need_tools(*BUILD_TOOLS, "lintian")
    src = tmp_path / "src"
    files = run("git", "-C", str(REPO), "ls-files", "-z").stdout.split("\0")
    for f in (f for f in files if f and not f.startswith(("tests/", "bench/"))):
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f)
    r = run("dpkg-buildpackage", "-S", "-us", "-uc", "-d", cwd=str(src))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (dsc,) = tmp_path.glob("*.dsc")
    r = run("lintian", "--display-info", "--pedantic", str(dsc))
    tags = [line for line in r.stdout.splitlines() if line[:3] in ("E: ", "W: ")]
    assert not tags, "lintian (source):\n" + r.stdout


def test_udev_rule_binds_every_guest_port_and_nothing_else(members, extracted):
    """The rule udev runs for guest ports: its KERNEL globs (fnmatch, as udev
    matches them) take tap/veth/fwpr ports of any VMID and NIC, no other
    interface, and it runs the installed CLI with the port's name."""
    import fnmatch
    rule = "usr/lib/udev/rules.d/60-pve-microseg.rules"
    assert rule in members
    lines = [l for l in (extracted / rule).read_text().splitlines() if l and not l.startswith("#")]
    assert len(lines) == 2
    for line, action, verb in zip(lines, ('ACTION=="add|move"', 'ACTION=="remove"'), ("bind", "unbind")):
        assert line.startswith(action) and 'SUBSYSTEM=="net"' in line
        assert f'RUN+="/usr/sbin/pve-microseg port {verb} $name' in line
        globs = line.split('KERNEL=="')[1].split('"')[0].split("|")
        def matches(name):
            return any(fnmatch.fnmatchcase(name, g) for g in globs)
        for name in ("tap101i0", "tap999999999i31", "veth102i0", "fwpr103p0", "fwpr1000p7"):
            assert matches(name), name
        for name in ("tap", "vmbr0", "veth", "vethAbC", "fwbr103i0", "fwln103i0", "eth0", "vnet1", "tapx"):
            assert not matches(name), name
