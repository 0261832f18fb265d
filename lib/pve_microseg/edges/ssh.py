"""Ask the other nodes for their L2 state over ssh, the way pvesh reaches them.

`pve-microseg status --local --output-format json` on each node, over the
cluster's root ssh trust, with the options Proxmox itself uses (pve-cluster
src/PVE/SSHInfo.pm@05ad6c9, ssh_info_to_ssh_opts): root, batch mode, host key
alias = node name, and, where /etc/pve/nodes/<node>/ssh_known_hosts exists
(PVE 8.1 and later), that file as the only known-hosts file; the address
from /etc/pve/.members.  In parallel, with a timeout.  A node that does not
answer comes back as {"error": ...}, never skipped.
"""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor


def ssh_options(name, nodes_dir=None):
    """The options Proxmox passes to ssh for node `name`."""
    opts = ["-o", "BatchMode=yes", "-o", f"HostKeyAlias={name}"]
    known_hosts = nodes_dir / name / "ssh_known_hosts" if nodes_dir is not None else None
    if known_hosts is not None and known_hosts.is_file():
        opts += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=none"]
    return opts


def ask_nodes(ssh, nodes, timeout=5.0, ips=None, nodes_dir=None):
    """{node: the node's `status --local` JSON, or {"error": ...}}."""
    ips = ips or {}

    def one(name):
        cmd = [ssh, "-e", "none", *ssh_options(name, nodes_dir),
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
        except (ValueError, RecursionError):     # RecursionError: JSON nested too deeply
            answer = None
        if not isinstance(answer, dict):
            return name, {"error": "answered something that is not JSON (pve-microseg not installed there?)"}
        return name, answer

    if not nodes:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
        return dict(pool.map(one, nodes))
