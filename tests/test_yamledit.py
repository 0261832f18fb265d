"""yamledit: microseg.yaml edited in place, comments and layout kept."""

import pytest

from pve_microseg.parse import microseg_yaml
from pve_microseg.policy import yamledit
from pve_microseg.model.errors import ConfigError

BASE = """\
# cluster-wide pve-microseg configuration
bridges:
  # the DMZ
  web:
    gateway-mac: 02:00:00:00:01:01   # VRRP
    gateway-ip: [10.100.0.1]

  db:
    gateway-mac: 02:00:00:00:02:01
# guests below
guests:
  101:
    net0: [10.100.0.5]
"""


def parses(text):
    return microseg_yaml.parse_document(text, "microseg.yaml")


def test_add_a_bridge_after_its_siblings():
    new = yamledit.set_entry(BASE, ("bridges", "app"), {"gateway-mac": "02:00:00:00:03:01"})
    assert new == BASE.replace("    gateway-mac: 02:00:00:00:02:01\n",
                               "    gateway-mac: 02:00:00:00:02:01\n  app:\n    gateway-mac: 02:00:00:00:03:01\n")
    assert [b.name for b in parses(new).bridges] == ["web", "db", "app"]


def test_replace_and_remove_keep_every_other_line():
    new = yamledit.set_entry(BASE, ("bridges", "db"), {"gateway-mac": "02:00:00:00:02:02",
                                                      "gateway-ip": ["10.200.0.1"]})
    assert "  db:\n    gateway-mac: 02:00:00:00:02:02\n    gateway-ip: [10.200.0.1]\n# guests below\n" in new
    assert new.startswith(BASE.split("  db:")[0])
    gone = yamledit.remove_entry(BASE, ("bridges", "web"))
    assert gone == BASE.replace("  web:\n    gateway-mac: 02:00:00:00:01:01   # VRRP\n"
                                "    gateway-ip: [10.100.0.1]\n", "")
    assert [b.name for b in parses(gone).bridges] == ["db"]
    assert yamledit.remove_entry(BASE, ("bridges", "nope")) == BASE


def test_merge_keeps_the_entries_other_fields():
    new = yamledit.set_entry(BASE, ("guests", "101"), {"chain": "local:snippets/site.sh"}, merge=True)
    g = parses(new).guests[101]
    assert g.chain == "local:snippets/site.sh" and g.addresses == {0: ("10.100.0.5",)}


def test_new_section_and_empty_file():
    new = yamledit.set_entry(BASE, ("hookscript", "x"), {"a": 1})
    assert new.startswith(BASE) and new.endswith("\nhookscript:\n  x:\n    a: 1\n")
    assert yamledit.set_entry("", ("bridges", "web"), {"gateway-mac": "02:00:00:00:01:01"}) == \
        "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n"
    assert yamledit.set_entry("bridges:\n", ("bridges", "web"), {"gateway-mac": "m"}) == \
        "bridges:\n  web:\n    gateway-mac: m\n"


def test_refuses_what_it_cannot_edit_safely():
    with pytest.raises(ConfigError):
        yamledit.set_entry("bridges: {web: {gateway-mac: x}}\n", ("bridges", "db"), {"gateway-mac": "y"})
    with pytest.raises(ConfigError):
        yamledit.set_entry("bridges: [\n", ("bridges", "db"), {})


def test_merge_touches_only_the_given_keys():
    text = ("bridges:\n  web:   # DMZ, ticket 42\n    # router A/B\n    gateway-mac:\n      - 02:00:00:00:01:01\n"
            "      - 02:00:00:00:01:02\n    gateway-ip: 10.100.0.1   # VIP\n")
    new = yamledit.set_entry(text, ("bridges", "web"), {"gateway-ip": ["10.100.0.2"], "isolate-ports": True},
                             merge=True)
    assert new == text.replace("gateway-ip: 10.100.0.1   # VIP", "gateway-ip: [10.100.0.2]   # VIP") + \
        "    isolate-ports: true\n"
    assert [str(i) for i, _ in parses(new).bridges[0].ips] == ["10.100.0.2"]
