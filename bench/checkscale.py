"""`pve-microseg check` on one large guest .fw file, old code against new (issue 12).

    /usr/bin/python3 bench/checkscale.py [--old REV] [--sizes 1000,4000,16000,35000]
                                          [--timeout 120] [--out bench/results]

A guest owner can write ~35,000 rules into the 1 MiB pmxcfs allows; check
must lint such a file in seconds.  For each size and file shape, the lint of
the file (policy/fwlint.lint_cluster, what `check` runs per file) is timed in
a fresh process, with the library of this work tree (new) and of git
revision REV (old, default: the commit before the linear check, 89124c8),
side by side.  A run over the timeout is shown as "> timeout".

Shapes: distinct rules (tcp ports and sources all different: every pair of
rules had to be compared), IPSET sections (the strict parser looked up each
set's name against every earlier set), ipfilter-net<N> sets with a prefix
(each finding searched the sections for its line number).

Writes <out>/<date>-checkscale.json and .md when --out is given.
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = "/usr/bin/python3"
OLD = "89124c8"

SHAPES = {
    "rules": 'body = "[RULES]\\n" + "".join(f"IN ACCEPT -p tcp -dport {i % 60000 + 1} '
             '-source 10.{i // 65536}.{i // 256 % 256}.{i % 256}\\n" for i in range(n))',
    "ipsets": 'body = "".join(f"[IPSET s{i}]\\n10.0.0.{i % 250}\\n" for i in range(n))',
    "ipfilter": 'body = "".join(f"[IPSET ipfilter-net{i}]\\n10.{i // 250 % 250}.{i % 250}.0/24\\n" '
                'for i in range(n))',
}

PROGRAM = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pve_microseg.policy import fwlint
n = int(sys.argv[2])
{shape}
text = "[OPTIONS]\\nenable: 1\\n\\n" + body
t = time.perf_counter()
findings = fwlint.lint_cluster([("firewall/101.fw", text, "guest")], [], ["pve1"])
print(len(text), round(time.perf_counter() - t, 3), len(findings))
"""


def old_library(rev, where):
    """The lib/ directory of git revision `rev`, extracted under `where`."""
    archive = Path(where) / "old.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev, "lib"], check=True)
    with tarfile.open(archive) as t:
        t.extractall(where)
    return Path(where) / "lib"


def timed(lib, shape, n, timeout):
    try:
        r = subprocess.run([PY, "-c", PROGRAM.format(shape=SHAPES[shape]), str(lib), str(n)],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "note": f"> {timeout:g} s"}
    if r.returncode:
        return {"seconds": None, "note": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    size, seconds, findings = r.stdout.split()
    return {"seconds": float(seconds), "bytes": int(size), "findings": int(findings)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default=OLD, help=f"git revision of the old code (default {OLD})")
    ap.add_argument("--sizes", default="1000,4000,16000,35000")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per run (default 120)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        libs = {"old": old_library(a.old, tmp), "new": REPO / "lib"}
        for shape in a.shapes.split(","):
            for n in sizes:
                row = {"shape": shape, "n": n}
                for which, lib in libs.items():
                    row[which] = timed(lib, shape, n, a.timeout)
                rows.append(row)
                print(f"{shape:9} {n:6}  old {_shown(row['old']):>10}  new {_shown(row['new']):>10}",
                      file=sys.stderr, flush=True)
    table = ["| shape | lines | bytes | old (" + a.old + ") | new |", "|---|---:|---:|---:|---:|"]
    table += [f"| {r['shape']} | {r['n']} | {r['new'].get('bytes', '')} | {_shown(r['old'])} | "
              f"{_shown(r['new'])} |" for r in rows]
    print("\n".join(table))
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H%M%S")
        (a.out / f"{stamp}-checkscale.json").write_text(json.dumps(
            {"old": a.old, "timeout": a.timeout, "cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")
        (a.out / f"{stamp}-checkscale.md").write_text(
            "# check on one large guest .fw file, old against new\n\n" + "\n".join(table) + "\n")


def _shown(result):
    return f"{result['seconds']:.2f} s" if result.get("seconds") is not None else result["note"]


if __name__ == "__main__":
    main()
