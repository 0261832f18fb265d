#!/usr/bin/python3
"""Render a bench results JSON (written by run.py) as markdown.

    /usr/bin/python3 bench/report.py bench/results/<date>.json
"""

import json
import statistics
import sys

import designs

CASE_TITLES = {
    "a": "(a) guest → gateway, vnet0",
    "b": "(b) unmanaged bridge vmbr9",
    "c": "(c) guest → guest, vnet0 (microseg drops)",
    "d": "(d) gateway → guest, vnet0",
}


def _fmt_pps(x):
    return f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def _med(v):
    return statistics.median(v) if v else None


# pairs of designs whose pps ratio (same round) the table shows in a column of its own
VERSUS = (("microseg", "microseg-0.2.0"), ("microseg", "microseg-ps-off"), ("microseg", "microseg-nocount"))


def _samples(dp):
    """{(n, ports, case, design): {round: sample}}; ports is None for a design
    that binds no port (and in results from before --ports)."""
    by = {}
    for s in dp["samples"]:
        by.setdefault((s["n"], s.get("ports"), s["case"], s["design"]), {})[s["round"]] = s
    return by


def _get(d, n, p, case, design):
    """A (n, ports, case, design) entry; a design without ports stands for every P."""
    return d.get((n, p, case, design), d.get((n, None, case, design)))


def dataplane_stats(dp):
    """{(n, ports, case, design): {pps, ratio, rmin, rmax, rounds, delivered}}"""
    by = _samples(dp)
    out = {}
    for (n, p, case, d), rounds in by.items():
        base = by.get((n, None, case, "none"), {})
        ratios = [rounds[r]["pps"] / base[r]["pps"] for r in rounds if r in base and base[r]["pps"]]
        inj = sum(s["injected"] for s in rounds.values())
        out[(n, p, case, d)] = {
            "pps": _med([s["pps"] for s in rounds.values()]),
            "pps_min": min(s["pps"] for s in rounds.values()),
            "pps_max": max(s["pps"] for s in rounds.values()),
            "ratio": _med(ratios), "rmin": min(ratios) if ratios else None,
            "rmax": max(ratios) if ratios else None, "rounds": len(rounds),
            "delivered": sum(s["egress"] for s in rounds.values()) / inj if inj else None,
        }
    return out


def source_note(meta):
    src = meta.get("source")
    if not src:
        return ""
    return (f" Product code: commit {src['commit']}" + (" + local changes in lib/" if src["lib_modified"] else "")
            + f", ruleset.py sha1 {src['ruleset_sha1']}.")


def _versus(by, n, p, case, a, b):
    """Median over rounds of pps(a) / pps(b), and min, max."""
    ra, rb = _get(by, n, p, case, a) or {}, _get(by, n, p, case, b) or {}
    v = [ra[r]["pps"] / rb[r]["pps"] for r in ra if r in rb and rb[r]["pps"]]
    return (_med(v), min(v), max(v)) if v else None


def _rows(dp):
    """(n, ports) of the table's rows: P only where some design binds ports."""
    ports = dp["meta"].get("ports") if dp["meta"].get("port_designs") else None
    return [(n, p) for n in dp["meta"]["ns"] for p in (ports or [None])]


def dataplane_table(dp, title):
    st = dataplane_stats(dp)
    by = _samples(dp)
    rows = _rows(dp)
    with_p = any(p is not None for _, p in rows)
    ds = [d for d in dp["meta"]["designs"] if not d.startswith(("probe-", "abl-"))]
    ds += [d for d in dp["meta"]["designs"] if d.startswith("abl-")]
    vs = [(a, b) for a, b in VERSUS if a in ds and b in ds]
    cases = sorted({c for (_, _, c, _) in st})
    failed = {(l["design"], l["n"], l.get("ports")): l["error"] for l in dp["load"] if not l["ok"]}
    skipped = {(s["design"], s["n"], s.get("ports")): s["why"] for s in dp.get("skipped", [])}
    lines = [f"#### {title}", "",
             f"{dp['meta']['pktgen']}; {dp['meta']['rounds']} rounds × {dp['meta']['duration_s']} s "
             f"per measurement; cell = median pps (ratio to `none` in the same round: median "
             f"[min–max]); kernel {dp['meta']['kernel']}, {dp['meta']['cpus']} vCPU."
             + source_note(dp["meta"]), ""]
    if with_p:
        lines[-2] += (f" P = bound guest ports (port security) of {', '.join(dp['meta']['port_designs'])};"
                      " the other designs bind none: one measurement per N.")
    for a, b in vs:
        lines[-2] += f" `{a} / {b}`: pps ratio of the two in the same round (median [min–max])."
    lines.append("| case | N | " + ("P | " if with_p else "") + " | ".join(ds)
                 + "".join(f" | {a} / {b}" for a, b in vs) + " |")
    lines.append("|---|---:|" + ("---:|" if with_p else "") + "---:|" * (len(ds) + len(vs)))
    for case in cases:
        for n, p in rows:
            cells = []
            for d in ds:
                s = _get(st, n, p, case, d)
                if s is None:
                    bad = failed.get((d, n, p)) or failed.get((d, n, None))
                    why = skipped.get((d, n, p)) or skipped.get((d, n, None))
                    cells.append("cannot load" if bad else ("not run" if why else "–"))
                    continue
                cell = _fmt_pps(s["pps"])
                if d != "none" and s["ratio"] is not None:
                    cell += f" ({s['ratio']:.2f}"
                    if s["rounds"] > 1 and s["rmax"] - s["rmin"] >= 0.005:
                        cell += f" [{s['rmin']:.2f}–{s['rmax']:.2f}]"
                    cell += ")"
                elif d == "none" and s["rounds"] > 1:
                    cell += f" [{_fmt_pps(s['pps_min'])}–{_fmt_pps(s['pps_max'])}]"
                if s["delivered"] is not None and s["delivered"] < 0.5:
                    cell += " drop"
                cells.append(cell)
            for a, b in vs:
                v = _versus(by, n, p, case, a, b)
                cells.append("–" if v is None else f"{v[0]:.2f}" + (
                    f" [{v[1]:.2f}–{v[2]:.2f}]" if v[2] - v[1] >= 0.005 else ""))
            lines.append(f"| {CASE_TITLES.get(case, case)} | {n} | " + (f"{p} | " if with_p else "")
                         + " | ".join(cells) + " |")
    lines.append("")
    notes = []

    def where(d, n, p):
        return f"{d}, N={n}" + ("" if p is None else f", P={p}")
    order = lambda kv: (kv[0][1], kv[0][0], kv[0][2] or 0)  # noqa: E731
    for (d, n, p), why in sorted(failed.items(), key=order):
        notes.append(f"- {where(d, n, p)}: the kernel refused the ruleset: `{why}`")
    seen = set()
    for (d, n, p), why in sorted(skipped.items(), key=order):
        if (d, n, why) not in seen:
            seen.add((d, n, why))
            notes.append(f"- {d}, N={n}: not loaded ({why})")
    lim = dp.get("article_limit")
    if lim:
        notes.append(f"- article, one transaction per bridge (as its if-up.d scripts deploy it): "
                     f"{lim['loaded']} bridges loaded, bridge #{lim.get('failed_at', '?')} refused: "
                     f"`{lim['error']}` ({lim['seconds']:.0f} s for the whole probe)")
    return "\n".join(lines + notes) + "\n"


def load_table(dp, title):
    recs = {}
    for l in dp["load"]:
        if l["design"].startswith("probe-"):
            continue
        recs.setdefault((l["n"], l.get("ports"), l["design"]), []).append(l)
    rows = _rows(dp)
    with_p = any(p is not None for _, p in rows)
    ds = [d for d in dp["meta"]["designs"] if d != "none" and not d.startswith(("probe-", "abl-"))]
    lines = [f"#### {title}", "",
             "One transaction into an empty network namespace (article: `nft -f` text through "
             "libnftables; microseg: `Nft().run(ruleset.full(...))`, what `pve-microseg apply` "
             "does); median seconds (number of loads); anon = anonymous sets the transaction "
             "creates." + (" P = bound guest ports (designs without port security: the same "
                           "loads in every P row)." if with_p else ""), "",
             "| N | " + ("P | " if with_p else "") + " | ".join(ds) + " |",
             "|---:|" + ("---:|" if with_p else "") + "---:|" * len(ds)]
    for n, p in rows:
        cells = []
        for d in ds:
            v = recs.get((n, p, d)) or recs.get((n, None, d))
            if not v:
                skipped = [s for s in dp.get("skipped", []) if s["design"] == d and s["n"] == n]
                cells.append("not loaded" if skipped else "–")
                continue
            ok = [x["load_s"] for x in v if x["ok"]]
            if ok:
                cells.append(f"{_med(ok):.2f} s ({len(ok)}; anon {v[0].get('anon_sets', '?')})")
            else:
                cells.append(f"FAILS after {v[0]['load_s']:.1f} s")
        lines.append(f"| {n} | " + (f"{p} | " if with_p else "") + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def probe_table(dp):
    st = {}
    for s in dp["samples"]:
        if s["case"] == "a":
            st.setdefault(s["design"], []).append(1e9 / s["pps"])
    if "probe-empty" not in st:
        return ""
    none = _med(st["none"])
    empty = _med(st["probe-empty"])
    lines = ["#### Cost of one rule (icount: guest instructions per frame)", "",
             f"Bare bridge path (pktgen → bridge → dummy egress, no hooks): **{none:.0f}** "
             f"instructions/frame. One base chain on the forward hook, empty: +{empty - none:.0f}. "
             "Each probe adds 20 copies of one rule that does not match the guest → gateway frame:", "",
             "| rule | instructions per rule |", "|---|---:|"]
    for kind, rule in designs.RULE_PROBES.items():
        d = f"probe-{kind}"
        if d in st and kind != "empty":
            label = f"`{rule}`" + {"vmap-rhash": " (miss; map as ruleset.py creates it: rhashtable)",
                                    "vmap-hash": " (miss; map with `size 65536`: fixed hash)"}.get(kind, "")
            lines.append(f"| {label} | {(_med(st[d]) - empty) / 20:.0f} |")
    return "\n".join(lines) + "\n"


HOOK_CASES = {
    "true": "`/bin/sh -c true` (floor)",
    "nonbridge": "(i) not a bridge",
    "unmanaged-decided": "(ii) unmanaged bridge, decided before",
    "managed-decided": "(iii) managed bridge, rules loaded before",
    "unmanaged-changed": "(ii) unmanaged bridge, config changed since",
    "managed-changed": "(iii) managed bridge, config changed since (nothing to load)",
    "managed-first": "(iii) managed bridge, first run: loads all bridges' rules",
    "managed-down": "if-down.d: managed bridge goes down (removes its rules)",
}


def hooks_table(results):
    rows = [(w, results[k]) for w, k in (("host", "hooks_host"), ("guest", "hooks_guest")) if k in results]
    if not rows:
        return ""
    clock = results["meta"].get("hooks_clock", "wall")
    lines = [f"#### if-up.d hook, one invocation (median ms [p10–p90]; host: wall clock; guest: "
             f"{'virtual time under -icount (guest instructions / 1e9)' if clock == 'icount' else 'wall clock'})", ""]
    for where, h in rows:
        lines.append(f"- {where}: {h['meta']['hook']}; kernel {h['meta']['kernel']}, "
                     f"{h['meta']['cpus']} CPU, {h['meta']['reps']} reps." + source_note(h["meta"]))
    lines += ["", "| case | microseg.yaml | " + " | ".join(f"{w}" for w, _ in rows) + " |",
              "|---|---:|" + "---:|" * len(rows)]
    names = []
    for _, h in rows:
        for n in h["summary"]:
            if n not in names:
                names.append(n)
    for name in names:
        case, _, nb = name.partition("/")
        cells = []
        for _, h in rows:
            s = h["summary"].get(name)
            if not s:
                cells.append("–")
                continue
            t = h["summary"]["true"]["median"]
            cell = f"{s['median'] * 1e3:.1f} [{s['p10'] * 1e3:.1f}–{s['p90'] * 1e3:.1f}]"
            if name != "true":
                cell += f" (+{(s['median'] - t) * 1e3:.1f})"
            if name in h.get("errors", {}):
                cell += " ERROR"
            cells.append(cell)
        label = HOOK_CASES.get(case, case)
        lines.append(f"| {label} | {nb + ' bridges' if nb else ''} | " + " | ".join(cells) + " |")
    for where, h in rows:
        for name, e in h.get("errors", {}).items():
            lines.append(f"\n{where} {name} failed: `{e.splitlines()[-1] if e else '?'}`")
    return "\n".join(lines) + "\n"


def ifupdown_table(ifu, clock):
    if not ifu:
        return ""
    m = ifu["meta"]
    lines = ["#### ifupdown2 with %d managed VNets (seconds, %s)" % (
        m["bridges"], "virtual time under -icount" if clock == "icount" else "wall clock"), "",
             f"ifupdown2 {m['ifupdown2']}, {m['addon_scripts_support']}, other if-up.d hooks: "
             f"{', '.join(m['other if-up.d hooks']) or 'none'}; kernel {m['kernel']}, {m['cpus']} vCPU."
             + source_note(m), "",
             "| command | without our hooks | with our hooks | ratio |", "|---|---:|---:|---:|"]
    runs = ifu["runs"]
    labels = []
    for r in runs:
        if r["what"] not in labels:
            labels.append(r["what"])
    for label in labels:
        off = [r["seconds"] for r in runs if r["what"] == label and not r["hooks"]]
        on = [r["seconds"] for r in runs if r["what"] == label and r["hooks"]]
        if not (off or on):
            continue
        f = lambda v: (f"{_med(v):.1f} ({len(v)}: {min(v):.1f}–{max(v):.1f})" if len(v) > 1  # noqa: E731
                       else f"{v[0]:.1f}") if v else "–"
        ratio = f"{_med(on) / _med(off):.1f}×" if on and off else ""
        lines.append(f"| `{label}` | {f(off)} | {f(on)} | {ratio} |")
    loaded = [r for r in runs if r["hooks"] and r["what"] != "ifdown -a"]
    if loaded:
        lines += ["", f"With hooks, bridges with rules after each up/reload: "
                      f"{sorted({r['bridges_in_table'] for r in loaded})} of {m['bridges']}; "
                      f"bridges up: {sorted({r['bridges_up'] for r in runs if r['what'] != 'ifdown -a'})}."]
    return "\n".join(lines) + "\n"


def render(results):
    out = [f"### pve-microseg benchmarks — {results['meta']['date']}", "",
           f"`{results['meta']['command']}` on {results['meta']['host']}; "
           f"guest script {results['meta']['guest_script']}.", ""]
    for key, title in (("dataplane_icount", "Frames per second, deterministic clock (QEMU -icount: "
                                            "1 guest instruction = 1 ns)"),
                       ("dataplane_wall", "Frames per second, wall clock (QEMU TCG, noisy)"),
                       ("dataplane_veth", "Frames per second, veth ingress (icount)")):
        dp = results.get(key)
        if dp:
            out.append(dataplane_table(dp, title))
            if key != "dataplane_veth":
                out.append(load_table(dp, "Ruleset load time" + (" (virtual seconds)" if "icount" in key
                                                               else " (wall clock)")))
    probes = results.get("dataplane_probes")
    if probes:
        out.append(probe_table(probes))
    out.append(hooks_table(results))
    out.append(ifupdown_table(results.get("ifupdown"), results["meta"].get("hooks_clock", "wall")))
    for k, v in results.get("errors", {}).items():
        out.append(f"**{k} failed:** {v}\n")
    return "\n".join(x for x in out if x)


if __name__ == "__main__":
    print(render(json.load(open(sys.argv[1]))))
