"""`pve-microseg status`: what is protected and what is not, cluster-wide.

Read in bulk from what pmxcfs already holds on this node (microseg.yaml,
SDN config, .vmlist, every guest config and firewall file, the IPAM), so
thousands of guests cost file reads, not pvesh calls.  The L2 rules are
node-local: each node answers `pve-microseg status --local` over the
cluster's root ssh trust (as pvesh proxies to other nodes), in parallel,
with a timeout; a node that does not answer is reported, never skipped.

A finding is a problem (the exit status says so) when something that should
be protected is not: a managed bridge present on a node without its rules;
a node that cannot be asked; a guest with a NIC on a managed bridge that
lacks the hookscript, `firewall=1`, an enabled guest firewall, `ipfilter: 1`
or a complete set; a VNet whose firewall `vnet enable` set up and that has
drifted.
"""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

from . import antispoof, config, fwfile, guests, ipam, node, ruleset, sdn, state, vnetfw
from .errors import MicrosegError


# ------------------------------------------------------------------ this node

def local(paths, nft_factory=None):
    """This node's L2 state: which managed bridges exist here and carry rules."""
    cfg = config.load(paths, sdn.load(paths))
    present = node.bridges_present(paths)
    loaded, how = None, "nftables"
    if nft_factory is not None:
        try:
            objs = nft_factory().list_table(ruleset.FAMILY, ruleset.TABLE) or []
            loaded = {o["chain"]["name"][len(ruleset.fwd_chain("")):] for o in objs
                      if "chain" in o and o["chain"]["name"].startswith(ruleset.fwd_chain(""))}
        except MicrosegError as e:
            return {"node": node.local_node(paths), "error": f"cannot read nftables: {e}"}
    else:                       # tests and tools without a kernel: what the hooks recorded
        loaded, how = set(state.applied(paths)), f"markers in {paths.applied_dir}"
    return {"node": node.local_node(paths), "source": how,
            "bridges": {b.name: {"present": b.name in present, "rules": b.name in loaded}
                        for b in cfg.bridges}}


# ------------------------------------------------------------------ other nodes

def members(paths):
    """{node: ip} from /etc/pve/.members (pmxcfs); {} when it cannot be read."""
    try:
        data = json.loads((paths.pve_dir / ".members").read_text(encoding="utf-8"))
        return {n: (info or {}).get("ip") for n, info in (data.get("nodelist") or {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def ask_nodes(paths, nodes, timeout=5.0, ssh=None, ips=None):
    """{node: local() result or {"error": ...}}, asked in parallel over ssh the
    way pvesh reaches other nodes (root, batch mode, host key alias = node)."""
    ssh = ssh or str(paths.ssh)
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
            return name, json.loads(r.stdout)
        except ValueError:
            return name, {"error": "answered something that is not JSON (pve-microseg not installed there?)"}

    if not nodes:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
        return dict(pool.map(one, nodes))


# ------------------------------------------------------------------ the cluster

def _vnet_firewall(paths, name):
    fw = fwfile.parse(_read(paths.pve_dir / "sdn" / "firewall" / f"{name}.fw"))
    names = [line.split(vnetfw.TAG, 1)[1].strip() for s in fw.sections if s.kind == "rules"
             for line in s.lines if vnetfw.TAG in line and not line.lstrip().startswith("|")]
    return {"enable": fw.option("enable") == "1", "policy_forward": fw.option("policy_forward") or "ACCEPT",
            "our-rules": names}


def _read(path):
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def guest_rows(paths, cfg, inventory, ipam_state, hookscript_name):
    """One row per guest with a NIC on a managed bridge; each with its problems."""
    managed = {b.name for b in cfg.bridges}
    rows = []
    for g in sorted(inventory.values(), key=lambda g: g.vmid):
        try:
            gc = guests.config(paths, g)
        except MicrosegError as e:
            rows.append({"vmid": g.vmid, "node": g.node, "type": g.type, "problems": [str(e)]})
            continue
        on = [n for n in gc.nics if n.bridge in managed]
        if not on:
            continue
        problems = []
        chained = cfg.guests.get(g.vmid)
        if not (gc.hookscript or "").endswith(f":snippets/{hookscript_name}"):
            problems.append(f"hookscript not attached ({gc.hookscript or 'none'})")
        for n in on:
            if not n.firewall:
                problems.append(f"{n.key} on {n.bridge} has firewall=0")
        fw = fwfile.parse(_read(paths.guest_fw(g.vmid)))
        if not antispoof.firewall_on(fw):
            problems.append("guest firewall off")
        if fw.option("ipfilter") != "1":
            problems.append("ipfilter not on")
        plan = antispoof.plan(gc, cfg, ipam_state)
        sets = fw.ipfilter_sets()
        for p in plan.nics:
            s = sets.get(p.nic.index)
            have = [l.strip() for l in s.lines if l.strip() and not l.strip().startswith("#")] if s else None
            if have is None:
                problems.append(f"{p.set_name} missing")
            elif s.managed and sorted(have) != sorted(p.addresses):
                problems.append(f"{p.set_name} differs from the known addresses "
                                f"({', '.join(have)} vs {', '.join(p.addresses)}): start the guest "
                                f"again or run 'pve-microseg guest sync {g.vmid}'")
        rows.append({"vmid": g.vmid, "node": g.node, "type": g.type,
                     "nics": [f"{n.key}@{n.bridge}" for n in on],
                     "chain": chained.chain if chained else None, "problems": problems})
    return rows


def cluster(paths, nft_factory=None, timeout=5.0, ssh=None):
    cfg = config.load(paths, sdn.load(paths))
    here = node.local_node(paths)
    ips = members(paths)
    nodes = sorted(ips) or node.cluster_nodes(paths) or [here]
    answers = ask_nodes(paths, [n for n in nodes if n != here], timeout, ssh, ips)
    answers[here] = local(paths, nft_factory)
    doc = {b.name: b for b in _specs(paths)}
    vnets = []
    for b in cfg.bridges:
        row = {"bridge": b.name, "vnet": b.vnet, "nodes": {}, "problems": []}
        if b.vnet:
            row["firewall"] = fwst = _vnet_firewall(paths, b.name)
            if not (fwst["enable"] and fwst["policy_forward"] == "DROP"):
                row["problems"].append("VNet firewall not on with policy_forward DROP "
                                       f"('pve-microseg vnet enable {b.name}')")
            elif not set(r.name for r in vnetfw.base_rules(b.name)) <= set(fwst["our-rules"]):
                row["problems"].append("VNet firewall lacks the gateway rules of 'vnet enable'")
        for n in nodes:
            a = answers.get(n, {})
            if "error" in a:
                row["nodes"][n] = "unknown"
                continue
            st = a.get("bridges", {}).get(b.name, {"present": False, "rules": False})
            row["nodes"][n] = ("protected" if st["rules"] else "NO RULES") if st["present"] else \
                ("rules waiting" if st["rules"] else "not present")
            if st["present"] and not st["rules"]:
                row["problems"].append(f"present on {n} without L2 rules (run 'pve-microseg apply' there)")
        vnets.append(row)
    sdn_cfg = sdn.load(paths)
    unmanaged = sorted(set(sdn_cfg.vnets) - {b.name for b in cfg.bridges})
    inventory = guests.vmlist(paths)
    rows = guest_rows(paths, cfg, inventory, ipam.load(paths), paths.hookscript.name)
    node_problems = [f"{n}: {a['error']}" for n, a in sorted(answers.items()) if "error" in a]
    cluster_fw = fwfile.parse(_read(paths.firewall_dir / "cluster.fw"))
    if cfg.bridges and not antispoof.firewall_on(cluster_fw):
        node_problems.append("the datacenter firewall is off: no guest firewall, ipfilter set or VNet "
                             "firewall applies")
    if any(b.vnet for b in cfg.bridges):
        for n in nodes:
            host = fwfile.parse(_read(paths.pve_dir / "nodes" / n / "host.fw"))
            if host.option("nftables") != "1":
                node_problems.append(f"{n}: nftables: 1 is not set in its host.fw, so VNet firewalls do "
                                     "nothing there")
    problems = (node_problems + [f"{v['bridge']}: {p}" for v in vnets for p in v["problems"]]
                + [f"guest {r['vmid']}: {p}" for r in rows for p in r["problems"]])
    return {"node": here, "nodes": {n: ("error: " + answers[n]["error"]) if "error" in answers.get(n, {})
                                    else "ok" for n in nodes},
            "bridges": vnets, "unmanaged-vnets": unmanaged, "guests": rows, "problems": problems}


def _specs(paths):
    text = config._read(paths.config)
    return config.load_document(paths, text).bridges if text else []
