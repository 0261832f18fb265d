"""Text renderings of dataplane results (pytest summary and demo)."""

from .checks import ATTACK_PROPS, ATTACKER, GATEWAY_PROPS, VICTIMS
from .topology import GUESTS

SHORT = {"delivered": "open", "blocked": "blocked", "pass": "pass", "fail": "FAIL", "not run": "not run"}


def cell(row):
    if row is None:
        return "-"
    text = SHORT.get(row["observed"], row["observed"])
    return text if row["observed"] == row["expected"] else f"{text} (!)"


def matrix_lines(run):
    """(check, expected, observed) as one table per kind; (!) marks a mismatch."""
    rows = run.rows
    out = []
    width = max(len(p) for p in list(GATEWAY_PROPS) + list(ATTACK_PROPS)) + 2
    out.append(f"gateway path (every guest must reach its gateway) -- expected: open")
    out.append(" " * width + "".join(f"{g.ns + ' ' + g.kind:<14}" for g in GUESTS))
    for p in GATEWAY_PROPS:
        out.append(f"{p:<{width}}" + "".join(f"{cell(rows.get(f'{p}/{g.ns}')):<14}" for g in GUESTS))
    expected = "blocked" if run.mode == "microseg" else "open (no rules)"
    out.append("")
    out.append(f"attacks from {ATTACKER.ns} ({ATTACKER.label}) -- expected: {expected}")
    out.append(" " * width + "".join(f"{'-> ' + v.ns + (' same node' if v.node == ATTACKER.node else ' other node'):<20}"
                                     for v in VICTIMS))
    for p in ATTACK_PROPS:
        out.append(f"{p:<{width}}" + "".join(f"{cell(rows.get(f'{p}/{ATTACKER.ns}->{v.ns}')):<20}"
                                             for v in VICTIMS))
    for kind, title in (("portsec", "port binding of a guest created after apply (udev rule)"),
                        ("lifecycle", "ifupdown2 lifecycle"), ("hookscript", "guest hookscript (plain bridge vmbr7)"),
                        ("explain", "explain: the evaluator's verdicts = the packets'"),
                        ("golden", "golden rulesets (kernel listing = tests/golden/*.nft)"),
                        ("drops", "drop counters per guest port and class (status --local)"),
                        ("droplog", "drop log (log: on): one kernel log line per port and class a minute"),
                        ("package", "package lifecycle on node1 (dpkg in the node)")):
        rows_of_kind = [r for r in run.data.get("results", []) if r["kind"] == kind]
        if rows_of_kind:
            out.append("")
            out.append(f"{title} -- expected: pass")
            for r in rows_of_kind:
                out.append(f"{r['prop']:<{width}}{cell(r):<14}{r['detail'][:200]}")
    bad = [r for r in run.data.get("results", []) if r["observed"] != r["expected"]]
    out.append("")
    out.append(f"{len(run.rows) - len(bad)} of {len(run.rows)} checks as expected"
               + (f"; unexpected: {', '.join(r['check'] for r in bad)}" if bad else ""))
    timings = run.data.get("timings", {})
    if timings:
        out.append("guest timings: " + ", ".join(f"{k} {v} s" for k, v in timings.items())
                   + f"; boot to power-off {run.seconds} s")
    return out
