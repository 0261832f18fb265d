#!/usr/bin/python3
"""Run every pve-microseg benchmark and print a markdown results table.

    /usr/bin/python3 bench/run.py            # full run (~1 h on a 2-core machine)
    /usr/bin/python3 bench/run.py --quick    # smoke run, a few minutes
    /usr/bin/python3 bench/run.py --profile portsec --only icount
                                    # port security: 0.3.0 vs 0.2.0, P bound ports (~16 min)
    /usr/bin/python3 bench/run.py --profile counters --only icount
                                    # per-port drop counters vs none (issue 13)

Writes bench/results/<date>.json and .md.  Needs root and what
tests/guest/run-in-guest.sh needs (qemu-system-x86, busybox-static, kmod,
cpio); boots the guest as needed.  See bench/README.md.

Parts (--only/--skip take a comma-separated subset):
  hooks-host   if-up.d hook per invocation, on this machine (no nft needed)
  wall         one guest boot, wall clock: dataplane (pps, load times, the
               article's base-chain limit), the hook per invocation, ifupdown2
               with 500 VNets
  icount       one guest boot with a deterministic clock (QEMU -icount; needs
               GUEST_ICOUNT in run-in-guest.sh): dataplane incl. the prototype
               rulesets, per-rule costs, veth ingress
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import designs  # noqa: E402
import report  # noqa: E402

GUEST_SCRIPT = os.path.join(REPO, "tests/guest/run-in-guest.sh")
PY = "/usr/bin/python3"

FULL = {
    "hooks_host": "--reps 40 --bridges 500",
    "dp_wall": "--ns 1,100,1000,4094 --designs none,article,microseg,microseg-0.2.0 --rounds 5 --duration 1.0",
    "hooks_guest": "--reps 10 --bridges 500 --first-reps 3",
    "ifupdown": "--bridges 500 --reps 1 --reloads 1 --ifdown-bridges 20",
    "dp_icount": ("--ns 1,100,1000,4094 --ports 10,4000 --designs none,article,microseg,"
                  "microseg-0.2.0,microseg-proto-prefix --rounds 2 --duration 0.3 --article-limit-max 0 "
                  "--article-max-n 1024 --no-extra-bridges"),
    "dp_probes": "--ns 1 --rounds 1 --duration 0.3 --article-limit-max 0 --no-extra-bridges",
    "dp_veth": ("--ns 1,1000 --designs none,article,microseg,microseg-0.2.0,microseg-proto-prefix "
                "--rounds 1 --duration 0.3 --article-limit-max 0 --inject veth"),
    "timeout_wall": 3600, "timeout_icount": 3600, "mem_icount": "4G",
}
QUICK = {
    "hooks_host": "--reps 5 --bridges 20",
    "dp_wall": ("--ns 1,20 --designs none,article,microseg,microseg-0.2.0 --rounds 2 --duration 0.3 "
                "--article-limit-max 0 --no-extra-bridges"),
    "hooks_guest": "--reps 2 --bridges 20 --first-reps 1",
    "ifupdown": "--bridges 10 --reps 1 --reloads 1 --ifdown-bridges 0",
    "dp_icount": ("--ns 1,20 --ports 10,100 --designs none,article,microseg,microseg-0.2.0,"
                  "microseg-proto-prefix --rounds 1 --duration 0.1 --article-limit-max 0 --no-extra-bridges"),
    "dp_probes": None,
    "dp_veth": None,
    "timeout_wall": 900, "timeout_icount": 900, "mem_icount": "3G",
}
# Port security (0.3.0) against the ruleset of 0.2.0, on the deterministic
# clock only: P bound guest ports, the fewest N that show whether it is flat
PORTSEC = dict(FULL, dp_icount=(
    "--ns 1,4094 --ports 10,1000,4000 --designs none,article,microseg,microseg-ps-off,microseg-0.2.0 "
    "--rounds 3 --duration 0.3 --article-limit-max 0 --article-max-n 1024 --no-extra-bridges"),
    dp_probes=None, dp_veth=None, timeout_icount=3000)
# The per-port drop counters (issue 13) against the same ruleset without
# them, on the deterministic clock: allowed paths (a, d) and the dropped one (c)
COUNTERS = dict(FULL, dp_icount=(
    "--ns 1,4094 --ports 10,4000 --designs none,microseg,microseg-nocount "
    "--rounds 3 --duration 0.3 --article-limit-max 0 --no-extra-bridges"),
    dp_probes=None, dp_veth=None, timeout_icount=3000)
PROFILES = {"full": FULL, "quick": QUICK, "portsec": PORTSEC, "counters": COUNTERS}
PARTS = ("hooks-host", "wall", "icount")


def log(*a):
    print(f"[bench {time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def guest_supports_icount(script):
    try:
        return "GUEST_ICOUNT" in open(script).read()
    except OSError:
        return False


def in_guest(script, commands, rwdir, timeout, icount=False, mem="3G"):
    """Run shell commands in one guest boot; each one's failure is recorded
    in rwdir/<name>.rc and does not stop the next."""
    lines = ["cd " + shlex.quote(REPO)]
    for name, cmd in commands:
        lines.append(f"( {cmd} ); echo $? > {rwdir}/{name}.rc")
    env = dict(os.environ, GUEST_RWDIR=rwdir, GUEST_TIMEOUT=str(timeout), GUEST_MEM=mem)
    if icount:
        env.update(GUEST_ICOUNT="1", GUEST_CPUS="1")
    t0 = time.monotonic()
    r = subprocess.run([script, "\n".join(lines)], env=env, stdout=sys.stderr, stderr=sys.stderr)
    log(f"guest ({'icount' if icount else 'wall clock'}) finished: rc={r.returncode}, "
        f"{time.monotonic() - t0:.0f} s")
    return r.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny N, short durations (smoke test); "
                    "same as --profile quick")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full",
                    help="which arguments the parts run with (the dicts at the top of this file)")
    ap.add_argument("--only", help=f"run only these parts ({', '.join(PARTS)})")
    ap.add_argument("--skip", default="", help="skip these parts")
    ap.add_argument("--guest-script", default=os.environ.get("BENCH_GUEST_SCRIPT", GUEST_SCRIPT),
                    help="the guest runner (default tests/guest/run-in-guest.sh)")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--hooks-clock", choices=("wall", "icount"), default="wall",
                    help="which guest runs the hook and ifupdown2 parts (icount: CPU work only, "
                         "much slower on the host)")
    ap.add_argument("--reuse", metavar="JSON",
                    help="start from this results file: parts not run now keep its results")
    args = ap.parse_args()
    if args.quick:
        args.profile = "quick"
    cfg = PROFILES[args.profile]
    parts = set(args.only.split(",")) if args.only else set(PARTS)
    parts -= set(filter(None, args.skip.split(",")))
    unknown = parts - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        ap.error("run as root (the guest runner and the hooks need it)")

    date = time.strftime("%Y-%m-%dT%H%M%S")
    os.makedirs(args.out_dir, exist_ok=True)
    rw = tempfile.mkdtemp(prefix="pve-microseg-bench-")
    os.chmod(rw, 0o755)
    results = {"meta": {"date": date, "quick": args.quick, "profile": args.profile,
                        "host": f"{platform.node()} "
                        f"({platform.release()}, {os.cpu_count()} CPUs)",
                        "command": " ".join([PY, "bench/run.py"] + sys.argv[1:]),
                        "guest_script": os.path.relpath(args.guest_script, REPO),
                        "git": subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                              capture_output=True, text=True).stdout.strip(),
                        "config": {k: v for k, v in cfg.items()}},
               "errors": {}}
    t_start = time.monotonic()
    designs.legacy_package()    # extract the 0.2.0 ruleset now: the guest finds it under /tmp

    if "hooks-host" in parts:
        log("hooks on this machine")
        out = os.path.join(rw, "hooks-host.json")
        r = subprocess.run([PY, os.path.join(HERE, "hooks.py"), "invoke", "--where", "host",
                            *cfg["hooks_host"].split(), "--out", out], stdout=sys.stderr)
        if r.returncode == 0:
            results["hooks_host"] = json.load(open(out))
        else:
            results["errors"]["hooks-host"] = f"rc={r.returncode}"

    bench = f"{PY} bench"
    hook_cmds = [("install", f"make -C {shlex.quote(REPO)} install DESTDIR=/ >/dev/null"),
                 ("hooks_guest", f"{bench}/hooks.py invoke --where guest {cfg['hooks_guest']} "
                                 f"--out {rw}/hooks_guest.json"),
                 ("ifupdown", f"{bench}/hooks.py ifupdown {cfg['ifupdown']} --out {rw}/ifupdown.json")]
    icount_script = args.guest_script if guest_supports_icount(args.guest_script) else \
        os.environ.get("BENCH_ICOUNT_SCRIPT")                    # development only
    if icount_script and not guest_supports_icount(icount_script):
        icount_script = None
    if "icount" in parts and not icount_script:
        msg = (f"{os.path.relpath(args.guest_script, REPO)} has no GUEST_ICOUNT knob: the "
               "deterministic-clock part is skipped, the hooks run on the wall clock (see bench/README.md)")
        log(msg)
        results["errors"]["icount"] = msg
    hooks_clock = args.hooks_clock if icount_script else "wall"     # the guest the hooks run in
    if hooks_clock in parts:        # the hooks run now
        results["meta"]["hooks_clock"] = hooks_clock
    results["meta"]["icount_guest_script"] = icount_script
    if args.reuse:
        old = json.load(open(args.reuse))
        ran = {"hooks-host": ("hooks_host",),
               "wall": ("dataplane_wall",) + (("hooks_guest", "ifupdown") if hooks_clock == "wall" else ()),
               "icount": ("dataplane_icount", "dataplane_probes", "dataplane_veth", "hooks_guest", "ifupdown")}
        fresh = {k for p in parts for k in ran[p]}
        for k, v in old.items():
            if k not in ("meta", "errors") and k not in fresh:
                results[k] = v
        results["meta"]["reused"] = {"file": os.path.relpath(args.reuse, REPO),
                                     "date": old["meta"]["date"],
                                     "parts": sorted(k for k in old if k not in ("meta", "errors")
                                                     and k not in fresh)}
        if "hooks_clock" not in results["meta"]:
            results["meta"]["hooks_clock"] = old["meta"].get("hooks_clock")

    def collect(names):
        for key, name in names:
            try:
                results[key] = json.load(open(os.path.join(rw, f"{name}.json")))
            except (OSError, ValueError) as e:
                results["errors"][name] = f"no results ({e.__class__.__name__})"
            rcfile = os.path.join(rw, f"{name}.rc")
            rc = open(rcfile).read().strip() if os.path.exists(rcfile) else "none (guest timeout?)"
            if rc != "0":
                results["errors"][name] = f"exit code {rc}" + (
                    " (partial results kept)" if key in results else "")

    hook_results = (("hooks_guest", "hooks_guest"), ("ifupdown", "ifupdown"))
    if "wall" in parts:
        log("guest, wall clock: dataplane" + (", hooks, ifupdown2" if hooks_clock == "wall" else ""))
        cmds = [("dp_wall", f"{bench}/dataplane.py {cfg['dp_wall']} --out {rw}/dp_wall.json")]
        if hooks_clock == "wall":
            cmds += hook_cmds
        in_guest(args.guest_script, cmds, rw, cfg["timeout_wall"])
        collect((("dataplane_wall", "dp_wall"),) + (hook_results if hooks_clock == "wall" else ()))

    if "icount" in parts and icount_script:
        log("guest, deterministic clock (icount): dataplane, prototypes, per-rule costs"
            + (", hooks, ifupdown2" if hooks_clock == "icount" else ""))
        probes = ",".join(["none"] + [f"probe-{k}" for k in designs.RULE_PROBES])
        cmds = [("dp_icount", f"{bench}/dataplane.py {cfg['dp_icount']} --out {rw}/dp_icount.json")]
        names = [("dataplane_icount", "dp_icount")]
        if cfg["dp_probes"]:
            cmds.append(("dp_probes", f"{bench}/dataplane.py {cfg['dp_probes']} --designs {probes} "
                                      f"--out {rw}/dp_probes.json"))
            names.append(("dataplane_probes", "dp_probes"))
        if cfg["dp_veth"]:
            cmds.append(("dp_veth", f"{bench}/dataplane.py {cfg['dp_veth']} --out {rw}/dp_veth.json"))
            names.append(("dataplane_veth", "dp_veth"))
        if hooks_clock == "icount":
            cmds += hook_cmds
        in_guest(icount_script, cmds, rw, cfg["timeout_icount"], icount=True, mem=cfg["mem_icount"])
        collect(tuple(names) + (hook_results if hooks_clock == "icount" else ()))

    results["meta"]["elapsed_s"] = time.monotonic() - t_start
    base = os.path.join(args.out_dir, date + ("" if args.profile == "full" else f"-{args.profile}"))
    with open(base + ".json", "w") as f:
        json.dump(results, f, indent=1)
    md = report.render(results)
    with open(base + ".md", "w") as f:
        f.write(md)
    print(md)
    shutil.rmtree(rw, ignore_errors=True)
    log(f"wrote {base}.json and .md ({results['meta']['elapsed_s'] / 60:.1f} min)")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
