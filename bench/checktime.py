"""`make check` wall time on this machine, per tier and per release (issue 11).

    /usr/bin/python3 bench/checktime.py [--first-run] [--out bench/results]

Runs each part of `make check` alone, one after the other, and times it:

  host tiers, Debian 12   pytest tests --ignore=tests/dataplane (this Python)
  host tiers, Debian 13   the same in the cached trixie chroot (make unit-trixie)
  dataplane, per release  one QEMU boot per mode (none, microseg), as the
                          pytest fixture boots them
  trixie root file system with --first-run: built from nothing in a scratch
                          cache (debootstrap + apt), against a boot from the
                          cache

Writes <out>/<date>-checktime.json and .md.  Needs root, the built .deb
(`make deb`) and, for the cached parts, a cached trixie root file system
(any earlier `make check`).  Nothing else should run meanwhile: the machine
has two cores and every part but the chroot keeps both busy.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = "/usr/bin/python3"
TRIXIE = REPO / "tests/guest/run-trixie-guest.sh"
HOST_TESTS = f"{PY} -m pytest -q -p no:cacheprovider tests --ignore=tests/dataplane"


def timed(name, cmd, env=None, shell=False):
    print(f"[checktime] {name}: {cmd if isinstance(cmd, str) else ' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, **(env or {})), shell=shell,
                       capture_output=True, text=True)
    seconds = round(time.monotonic() - t0, 1)
    tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
    print(f"[checktime] {name}: {seconds} s, exit {r.returncode}; {' | '.join(tail)}", file=sys.stderr, flush=True)
    return {"part": name, "seconds": seconds, "exit": r.returncode, "tail": tail}


def dataplane(release, mode, out):
    code = (f"import sys; sys.path.insert(0, '.'); from tests.dataplane import guest; "
            f"r = guest.boot('{mode}', '{out}/{release}-{mode}', release='{release}')['{mode}']; "
            f"bad = [x for x in r.data['results'] if x['observed'] != x['expected']]; "
            f"print(f'{{len(r.rows) - len(bad)}}/{{len(r.rows)}} as expected'); sys.exit(1 if bad else 0)")
    return timed(f"dataplane {release} {mode}", [PY, "-c", code], env={"CI": "true"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first-run", action="store_true", help="also build the trixie root file system from nothing")
    ap.add_argument("--out", default=str(REPO / "bench/results"))
    args = ap.parse_args()
    parts = []
    with tempfile.TemporaryDirectory(prefix="checktime-") as tmp:
        parts.append(timed("host tiers, Debian 12 (Python 3.11)", HOST_TESTS, env={"CI": "true"}, shell=True))
        parts.append(timed("host tiers, Debian 13 (trixie chroot, Python 3.13)", [str(TRIXIE), HOST_TESTS],
                           env={"CI": "true", "TRIXIE_CHROOT": "1"}))
        for release in ("bookworm", "trixie"):
            for mode in ("none", "microseg"):
                parts.append(dataplane(release, mode, tmp))
        parts.append(timed("trixie guest boot, cached root file system", [str(TRIXIE), "true"],
                           env={"GUEST_SHARE_CWD": "0"}))
        if args.first_run:
            parts.append(timed("trixie root file system, first run (debootstrap + apt + boot)", [str(TRIXIE), "true"],
                               env={"GUEST_SHARE_CWD": "0", "TRIXIE_CACHE_DIR": f"{tmp}/cache"}))
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stamp}-checktime.json").write_text(json.dumps(parts, indent=1))
    lines = [f"# make check, per tier and release ({stamp}, {os.cpu_count()} cores, TCG)", "",
             "| part | seconds | exit |", "|---|---|---|"]
    lines += [f"| {p['part']} | {p['seconds']} | {p['exit']} |" for p in parts]
    lines += ["", f"sum: {round(sum(p['seconds'] for p in parts), 1)} s"]
    (out / f"{stamp}-checktime.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(p["exit"] == 0 for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
