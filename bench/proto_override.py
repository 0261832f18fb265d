#!/usr/bin/python3
"""Make a COPY of the library load the prototype ruleset (designs.microseg_proto),
to check with the dataplane attack matrix that it keeps the product's verdicts.

Only for a throwaway tree, e.g. the guest's tmpfs overlay of this checkout:

    # inside tests/guest/run-in-guest.sh, cwd = the repository
    /usr/bin/python3 bench/proto_override.py lib/pve_microseg/policy/ruleset.py
    /usr/bin/python3 -m tests.dataplane.scenario --modes microseg --install source --out DIR

It appends an override of ruleset.skeleton() and ruleset._bridge_objects()
(what ruleset.full() and ruleset.update() are made of) to the given file.
Refuses to touch a file inside a git work tree's index unless --force, so it
is not run on the real checkout by mistake.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

OVERRIDE = f'''

# ---- appended by bench/proto_override.py (prototype ruleset; never commit) ----
def _bench_designs():
    import sys as _sys
    if {HERE!r} not in _sys.path:
        _sys.path.insert(0, {HERE!r})
    import designs
    return designs


_product_skeleton = skeleton


_product_removal = _removal


def skeleton():
    return _bench_designs()._proto_skeleton(base=_product_skeleton(), replace=False, named_set=False)


def _bridge_objects(bridge):
    return _bench_designs()._proto_bridge(bridge, "prefix", flush=True)


def _removal(name):
    return _product_removal(name) + _bench_designs()._proto_removal(name)
'''


def main():
    args = [a for a in sys.argv[1:] if a != "--force"]
    if len(args) != 1:
        raise SystemExit(__doc__)
    path = args[0]
    in_guest = not os.access("/proc/1/root", os.W_OK) or os.path.exists("/run/job/cmd")
    if "--force" not in sys.argv and not in_guest:
        r = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(path)), "rev-parse"],
                           capture_output=True)
        if r.returncode == 0:
            raise SystemExit(f"{path} is in a git work tree: run this in the guest (or --force)")
    with open(path, "a") as f:
        f.write(OVERRIDE)
    print(f"{path}: prototype ruleset override appended")


if __name__ == "__main__":
    main()
