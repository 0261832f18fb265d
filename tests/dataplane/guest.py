"""Host side: boot the QEMU guest once, run the scenario in it, read the results.

Used by the pytest fixture (conftest.py) and by demo.py.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_IN_GUEST = REPO / "tests" / "guest" / "run-in-guest.sh"
# The releases the dataplane runs on: Debian 12 (Proxmox VE 8) boots Debian 12's
# kernel on this machine's own root file system; Debian 13 (Proxmox VE 9) boots
# Debian 13's kernel on a Debian 13 root file system built once and cached.
GUEST_SCRIPTS = {
    "bookworm": RUN_IN_GUEST,
    "trixie": REPO / "tests" / "guest" / "run-trixie-guest.sh",
}
RELEASE_NAMES = {"bookworm": "Debian 12 / Proxmox VE 8", "trixie": "Debian 13 / Proxmox VE 9"}
PYTHON = "/usr/bin/python3"
EXIT_SKIP = 77          # run-in-guest.sh: prerequisites missing (never under CI=true)
EXIT_NO_PACKAGE = 3     # scenario.py: nothing to install for mode microseg


def in_ci():
    return os.environ.get("CI") == "true"


def install_how():
    """How the guest installs pve-microseg: under CI always the built .deb;
    otherwise DATAPLANE_INSTALL=deb|source|auto (default auto: the .deb if
    built, else the source tree with make install)."""
    if in_ci():
        return "deb"
    how = os.environ.get("DATAPLANE_INSTALL", "auto")
    if how not in ("deb", "source", "auto"):
        raise ValueError(f"DATAPLANE_INSTALL={how}: expected deb, source or auto")
    return how


def releases():
    """DATAPLANE_RELEASES=bookworm,trixie (the default: both); under CI always both."""
    if in_ci():
        return list(GUEST_SCRIPTS)
    names = [r for r in os.environ.get("DATAPLANE_RELEASES", ",".join(GUEST_SCRIPTS)).split(",") if r]
    unknown = [r for r in names if r not in GUEST_SCRIPTS]
    if unknown:
        raise ValueError(f"DATAPLANE_RELEASES: unknown {', '.join(unknown)}; expected {', '.join(GUEST_SCRIPTS)}")
    return names


class Unavailable(Exception):
    """The dataplane cannot run here (no qemu/kernel, nothing to test yet).
    A skip outside CI, a failure under CI=true."""


@dataclass
class Run:
    mode: str
    data: dict
    seconds: float
    output: str = ""
    rows: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rows = {r["check"]: r for r in self.data.get("results", [])}


def stale_deb_warning():
    """A dist/*.deb older than the source it was built from tests old code."""
    debs = sorted(REPO.glob("dist/pve-microseg_*_all.deb"), key=lambda p: p.stat().st_mtime)
    if not debs:
        return None
    built = debs[-1].stat().st_mtime
    newer = [p for d in ("lib", "bin", "ifupdown", "debian") for p in (REPO / d).rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.stat().st_mtime > built]
    if newer:
        return (f"{debs[-1].relative_to(REPO)} is older than {len(newer)} source file(s) "
                f"(e.g. {newer[0].relative_to(REPO)}): run `make deb`")
    return None


def boot(modes, out_dir, echo=None, release="bookworm"):
    """Run the scenario for `modes` ("none", "microseg" or "none,microseg") in
    one boot of `release`'s guest; return {mode: Run}.  `echo` gets the
    guest's output live."""
    script = GUEST_SCRIPTS[release]
    if not script.exists():
        raise Unavailable(f"{script} missing")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = f"{PYTHON} -m tests.dataplane.scenario --modes {modes} --out {out_dir} --install {install_how()}"
    env = dict(os.environ, GUEST_RWDIR=str(out_dir))
    # ~5 min on an idle 2-core machine; twice that when the host is busy
    env.setdefault("GUEST_TIMEOUT", "1500")
    t0 = time.monotonic()
    rc, lines = _run(script, cmd, env, echo)
    if rc == EXIT_NO_GUEST and any(NOT_STARTED in line for line in lines):
        # The guest died before the command started (a kernel panic while
        # booting, seen once in about a dozen boots): not the code under test.  One
        # more boot; the first one's console tail stays in the output.
        sys.stderr.write("[dataplane] the guest died before the command started; booting once more. "
                         "Its console:\n" + "".join(lines[-30:]))
        rc, more = _run(script, cmd, env, echo)
        lines += more
    seconds = round(time.monotonic() - t0, 1)
    output = "".join(lines)
    if rc == EXIT_SKIP and not in_ci():
        raise Unavailable(_last_line(output, "SKIP") or "QEMU guest prerequisites missing")
    runs = {}
    for mode in modes.split(","):
        path = out_dir / f"results-{mode}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        if "error" in data:
            if in_ci():
                raise RuntimeError(f"dataplane mode {mode}: {data['error']}")
            raise Unavailable(f"mode {mode}: {data['error']}")
        runs[mode] = Run(mode, data, seconds, output)
    if rc != 0 or len(runs) != len(modes.split(",")):
        raise RuntimeError(f"guest run failed (exit {rc}) after {seconds} s; last output:\n"
                           + "".join(lines[-40:]))
    return runs


EXIT_NO_GUEST = 255                                  # run-*-guest.sh: the guest gave no exit code
NOT_STARTED = "command started at guest uptime ?"   # ... and never reached the command


def _run(script, cmd, env, echo):
    proc = subprocess.Popen([str(script), cmd], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if echo:
            echo.write(line)
            echo.flush()
    return proc.wait(), lines


def _last_line(text, needle):
    hits = [l.strip() for l in text.splitlines() if needle in l]
    return hits[-1] if hits else None


if __name__ == "__main__":
    # /usr/bin/python3 -m tests.dataplane.guest [MODES [OUT_DIR [RELEASE]]]: one raw run, output live
    out = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="pve-microseg-dataplane-"))
    release = sys.argv[3] if len(sys.argv) > 3 else "bookworm"
    for mode, run in boot(sys.argv[1] if len(sys.argv) > 1 else "none", out, echo=sys.stdout,
                          release=release).items():
        bad = [r for r in run.data["results"] if r["observed"] != r["expected"]]
        print(f"{mode}: {len(run.rows) - len(bad)}/{len(run.rows)} as expected, {run.seconds} s")
    print(f"results: {out}/results-<mode>.json")
