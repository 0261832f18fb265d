"""Ask the other nodes for their L2 state over ssh, the way pvesh reaches them.

`pve-microseg status --local --output-format json` on each node, over the
cluster's root ssh trust (root, batch mode, host key alias = node name, the
address from /etc/pve/.members), in parallel, with a timeout.  A node that
does not answer comes back as {"error": ...}, never skipped.
"""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor


def ask_nodes(ssh, nodes, timeout=5.0, ips=None):
    """{node: the node's `status --local` JSON, or {"error": ...}}."""
    ips = ips or {}

    def one(name):
        cmd = [ssh, "-e", "none", "-o", "BatchMode=yes", "-o", f"HostKeyAlias={name}",
               "-o", f"ConnectTimeout={max(1, int(timeout))}", f"root@{ips.get(name) or name}",
               "pve-microseg", "status", "--local", "--output-format", "json"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return name, {"error": f"no answer within {timeout:g} s"}
        except OSError as e:
            return name, {"error": f"cannot run {ssh}: {e.strerror}"}
        if r.returncode not in (0, 9):
            return name, {"error": (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]}
        try:
            answer = json.loads(r.stdout)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return name, {"error": "answered something that is not JSON (pve-microseg not installed there?)"}
        return name, answer

    if not nodes:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
        return dict(pool.map(one, nodes))
