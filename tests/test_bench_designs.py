"""The benchmark's counter-free design is the product's ruleset minus exactly
the per-port drop counters (bench/designs.py: microseg-nocount)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import designs  # noqa: E402
from pve_microseg.policy import ruleset  # noqa: E402


def _commands_not_in_drop_chains(tr):
    chains = {ruleset.drop_chain(c) for c in ruleset.DROP_CLASSES}
    out = []
    for cmd in tr["nftables"]:
        body = next(iter(cmd.values()))
        obj = body.get("rule") or body.get("chain") or {}
        if obj.get("chain", obj.get("name")) not in chains:
            out.append(cmd)
    return out


def test_nocount_has_no_drop_chain_and_no_meter():
    text = json.dumps(designs.microseg_nocount(2, 10))
    assert "drop-" not in text and "drops-" not in text and '"meter"' not in text


def test_nocount_differs_only_in_the_drop_verdicts():
    counted, plain = designs.microseg(2, 10), designs.microseg_nocount(2, 10)
    kept = _commands_not_in_drop_chains(counted)
    assert len(kept) == len(plain["nftables"])
    gotos = 0
    for a, b in zip(kept, plain["nftables"]):
        ja, jb = json.dumps(a), json.dumps(b)
        n = ja.count('{"goto": {"target": "drop-')
        gotos += n
        if n == 0:
            assert a == b
        else:
            assert jb.count('{"drop": null}') - ja.count('{"drop": null}') == n
    assert gotos >= len(ruleset.DROP_CLASSES) - 1
