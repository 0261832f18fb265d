"""What is protected and what is not (pure): the decisions of `status`.

A finding is a problem (the exit status says so) when something that should
be protected is not: a managed bridge present on a node without its rules;
a node that cannot be asked; a guest with a NIC on a managed bridge that
lacks the hookscript, `firewall=1`, an enabled guest firewall, `ipfilter: 1`
or a complete set; a VNet whose firewall `vnet enable` set up and that has
drifted; the datacenter firewall off; a node without the nftables backend
while a VNet is managed; a node with the nftables backend on (`nftables: 1`)
whose proxmox-firewall is older than 1.2.0 (its ipfilter checks only ARP,
see proxmox_firewall_problem) or, while a VNet is managed, not installed.
"""

from . import antispoof, bindings, debversion, hookscripts, vnetfw

NOT_INSTALLED = "not installed"
UNKNOWN = "unknown"
# proxmox-firewall before 1.2.0 never drops an IP packet for its source
# address under ipfilter: the rule it generated compared the source with the
# set and with the (empty) nomatch set at once, so it never matched; only the
# ARP sender was checked.  Fixed by "fix #6336: fix ipfilter matching logic",
# proxmox/proxmox-firewall proxmox-firewall/src/rule.rs@9b7295a, first
# released in 1.2.0 (debian/changelog@375a361).  PVE 8's last is 0.7.1.
IPFILTER_FIXED = "1.2.0"


def nics_on(guest_config, managed):
    """The NICs of a guest on one of the `managed` bridges."""
    return [n for n in guest_config.nics if n.bridge in managed]


def local_bridges(cfg, present, loaded):
    """{bridge: {present, rules}} of this node."""
    return {b.name: {"present": b.name in present, "rules": b.name in loaded} for b in cfg.bridges}


def vlan_bridges(bridge, present, managed):
    """The `<bridge>v<tag>` bridges of this node that carry `bridge`'s rules
    (Proxmox plugs a NIC with tag=<tag> there when `bridge` is not
    VLAN-aware); one managed by its own name is not among them."""
    prefix = f"{bridge}v"
    return sorted(n for n in present if n.startswith(prefix) and n[len(prefix):].isdigit() and n not in managed)


def unbound_ports(ports, bound):
    """[{port, bridge}] of the guest ports on managed bridges (ports: {bridge:
    [port names]}) that have no binding: they send nothing."""
    return [{"port": p, "bridge": b} for b, names in sorted(ports.items()) for p in sorted(names)
            if bindings.port_owner(p) is not None and p not in bound]


def local_unprotected(bridges):
    """True when a managed bridge exists here without its rules."""
    return any(b["present"] and not b["rules"] for b in bridges.values())


def vnet_firewall(fw):
    """The VNet firewall as `vnet enable` sees it: on, policy, our rules' names."""
    names = [line.split(vnetfw.TAG, 1)[1].strip() for s in fw.sections if s.kind == "rules"
             for line in s.lines if vnetfw.TAG in line and not line.lstrip().startswith("|")]
    return {"enable": fw.option("enable") == "1", "policy_forward": fw.option("policy_forward") or "ACCEPT",
            "our-rules": names}


def bridge_row(bridge, nodes, answers, vnet_fw=None):
    """One managed bridge across the cluster; vnet_fw: its parsed VNet .fw (VNets only)."""
    row = {"bridge": bridge.name, "vnet": bridge.vnet, "nodes": {}, "problems": []}
    if bridge.vnet:
        row["firewall"] = fwst = vnet_firewall(vnet_fw)
        if not (fwst["enable"] and fwst["policy_forward"] == "DROP"):
            row["problems"].append("VNet firewall not on with policy_forward DROP "
                                   f"('pve-microseg vnet enable {bridge.name}')")
        elif not {r.name for r in vnetfw.base_rules(bridge.name)} <= set(fwst["our-rules"]):
            row["problems"].append("VNet firewall lacks the gateway rules of 'vnet enable'")
    for n in nodes:
        a = answers.get(n, {})
        if "error" in a:
            row["nodes"][n] = "unknown"
            continue
        st = (a.get("bridges") or {}).get(bridge.name, {"present": False, "rules": False})
        row["nodes"][n] = ("protected" if st["rules"] else "NO RULES") if st["present"] else \
            ("rules waiting" if st["rules"] else "not present")
        if st["present"] and not st["rules"]:
            row["problems"].append(f"present on {n} without L2 rules (run 'pve-microseg apply' there)")
    return row


def guest_row(guest, gc, cfg, fw, ipam_state, hookscript_name, claims=None):
    """One guest with a NIC on a managed bridge, with its problems; None when
    it has no such NIC.  gc: its GuestConfig; fw: its parsed .fw file;
    claims: bindings.Claims of every guest (its sets are compared with what
    pre-start would fill them with, which leaves out other guests' addresses)."""
    on = nics_on(gc, cfg.names)
    if not on:
        return None
    problems = []
    if not hookscripts.is_ours(gc.hookscript, hookscript_name):
        problems.append(f"hookscript not attached ({gc.hookscript or 'none'})")
    for n in on:
        if not n.firewall:
            problems.append(f"{n.key} on {n.bridge} has firewall=0")
    if not antispoof.firewall_on(fw):
        problems.append("guest firewall off")
    if fw.option("ipfilter") != "1":
        problems.append("ipfilter not on")
    plan = antispoof.plan(gc, cfg, ipam_state, claims=claims)
    sets = fw.ipfilter_sets()
    for p in plan.nics:
        s = sets.get(p.nic.index)
        have = [l.strip() for l in s.lines if l.strip() and not l.strip().startswith("#")] if s else None
        if have is None:
            problems.append(f"{p.set_name} missing")
        elif s.managed and sorted(have) != sorted(p.addresses):
            problems.append(f"{p.set_name} differs from the known addresses "
                            f"({', '.join(have)} vs {', '.join(p.addresses)}): start the guest "
                            f"again or run 'pve-microseg guest sync {guest.vmid}'")
    settings = cfg.guests.get(guest.vmid)
    return {"vmid": guest.vmid, "node": guest.node, "type": guest.type,
            "nics": [f"{n.key}@{n.bridge}" for n in on],
            "chain": settings.chain if settings else None, "problems": problems}


def unreadable_guest_row(guest, error):
    return {"vmid": guest.vmid, "node": guest.node, "type": guest.type, "problems": [str(error)]}


def answered_proxmox_firewall(answer):
    """A node's proxmox-firewall as its `status --local` answer gives it: a
    version, NOT_INSTALLED or 'unknown...'; UNKNOWN when the node did not
    answer or runs a pve-microseg that does not say."""
    value = answer.get("proxmox-firewall")
    return value if isinstance(value, str) and value else UNKNOWN


def proxmox_firewall_problem(installed):
    """What is wrong on a node with the nftables backend on (nftables: 1)
    whose proxmox-firewall is `installed` (a version, NOT_INSTALLED or
    something unknown): ("missing" | "old", sentence), or None when nothing
    is or nothing can be told."""
    if installed == NOT_INSTALLED:
        # pve-firewall takes nftables: 1 only where /usr/libexec/proxmox/proxmox-firewall
        # exists (get_nftables_option, proxmox/pve-firewall src/PVE/Firewall.pm@6f1311f)
        return ("missing", "nftables: 1 is set in its host.fw, but proxmox-firewall is not installed: "
                           "pve-firewall then keeps the iptables backend, so VNet firewalls do nothing there "
                           "(install proxmox-firewall)")
    try:
        old = debversion.compare(installed, IPFILTER_FIXED) < 0
    except ValueError:
        return None
    if not old:
        return None
    return ("old", f"proxmox-firewall {installed} is older than {IPFILTER_FIXED}: with the nftables backend "
                   "(nftables: 1) the IP part of ipfilter does not filter there, only ARP is checked, so its "
                   "guests can send IP packets with a spoofed source address past their guest firewall "
                   "(pve-microseg's own L2 rules and port security still hold); upgrade proxmox-firewall "
                   f"to {IPFILTER_FIXED} or later")


def firewall_backends(nodes, answers, host_fws):
    """{node: {"nftables": host.fw says nftables: 1, "proxmox-firewall": version, NOT_INSTALLED or unknown}}."""
    return {n: {"nftables": n in host_fws and host_fws[n].option("nftables") == "1",
                "proxmox-firewall": answered_proxmox_firewall(answers.get(n, {}))} for n in nodes}


def node_problems(answers, cfg, cluster_fw, host_fws):
    """Problems of the nodes: unanswered, datacenter firewall off, no nftables
    backend where a VNet is managed, proxmox-firewall missing or too old for
    ipfilter under nftables: 1.  host_fws: {node: parsed host.fw}."""
    problems = [f"{n}: {a['error']}" for n, a in sorted(answers.items()) if "error" in a]
    problems += [f"{n}: guest port {u['port']} on {u['bridge']} has no port-security binding, so it sends "
                 "nothing ('pve-microseg port bind " + u["port"] + "' there; 'pve-microseg show' says why)"
                 for n, a in sorted(answers.items()) for u in a.get("unbound-ports", [])]
    if cfg.bridges and not antispoof.firewall_on(cluster_fw):
        problems.append("the datacenter firewall is off: no guest firewall, ipfilter set or VNet "
                        "firewall applies")
    vnets = any(b.vnet for b in cfg.bridges)
    if vnets:
        for n, host in host_fws.items():
            if not antispoof.nftables_on(host):
                problems.append(f"{n}: nftables: 1 is not set in its host.fw, so VNet firewalls do "
                                "nothing there")
    for n, backend in sorted(firewall_backends(sorted(host_fws), answers, host_fws).items()):
        found = proxmox_firewall_problem(backend["proxmox-firewall"]) if backend["nftables"] else None
        if found and ((found[0] == "missing" and vnets) or (found[0] == "old" and cfg.bridges)):
            problems.append(f"{n}: {found[1]}")
    return problems


def report(here, nodes, answers, bridge_rows, unmanaged_vnets, guest_rows, node_problems, backends=None):
    """The whole of `status`, with every problem in one list; backends: firewall_backends()."""
    problems = (node_problems + [f"{r['bridge']}: {p}" for r in bridge_rows for p in r["problems"]]
                + [f"guest {r['vmid']}: {p}" for r in guest_rows for p in r["problems"]])
    return {"node": here,
            "nodes": {n: ("error: " + answers[n]["error"]) if "error" in answers.get(n, {}) else "ok"
                      for n in nodes},
            "bridges": bridge_rows, "unmanaged-vnets": unmanaged_vnets, "guests": guest_rows,
            "firewall-backends": backends or {}, "problems": problems}
