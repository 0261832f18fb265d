"""A microseg.yaml nested too deeply is an error naming the file and line,
never a crash (issue 12: the C loader's composer segfaulted at 40,000 levels,
taking the if-up.d hook down before it could fall back)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pve_microseg.model.errors import ConfigError
from pve_microseg.parse import yamlnodes
from conftest import unavailable

REPO = Path(__file__).resolve().parents[1]
FLOW_BOMB = "bridges: " + "[" * 40000 + "]" * 40000 + "\n"          # 80 KB
BLOCK_DEEP = "bridges:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 200))


@pytest.mark.parametrize("text,line", [(FLOW_BOMB, 1), (BLOCK_DEEP, yamlnodes.MAX_DEPTH + 1)])
@pytest.mark.parametrize("loader", ["C", "pure Python"])
def test_too_deep_is_a_config_error_with_its_line(monkeypatch, text, line, loader):
    if loader == "pure Python":
        monkeypatch.setattr(yamlnodes, "_LOADER", yaml.SafeLoader)
    elif not hasattr(yaml, "CSafeLoader"):
        unavailable("PyYAML without libyaml (python3-yaml has it)")
    with pytest.raises(ConfigError) as e:
        yamlnodes.compose(text, "/etc/pve/microseg.yaml")
    assert e.value.line == line and f"nested deeper than {yamlnodes.MAX_DEPTH} levels" in str(e.value)


def test_the_deepest_allowed_file_still_composes():
    text = "a: " + "[" * (yamlnodes.MAX_DEPTH - 1) + "]" * (yamlnodes.MAX_DEPTH - 1) + "\n"
    assert yamlnodes.compose(text, "x.yaml") is not None


def test_every_entry_point_reports_it_instead_of_crashing(fake_node):
    """The CLI in a process of its own (a segfault would kill pytest): a clean
    error with the file and line, not signal 11."""
    fake_node.running_config()
    fake_node.write_config(FLOW_BOMB)
    env = dict(os.environ, **fake_node.env, PYTHONPATH=str(REPO / "lib"))
    r = subprocess.run([sys.executable, str(REPO / "bin/pve-microseg"), "show"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode > 0, (r.returncode, r.stderr)
    assert "microseg.yaml" in r.stderr and "nested deeper than" in r.stderr, r.stderr


def test_hook_falls_back_to_the_last_good_configuration(fake_node, fake_nft):
    from test_reconcile import fill_cache, loaded_bridges, log, node_with_vnet0
    from pve_microseg.flows import reconcile
    n = node_with_vnet0(fake_node)
    fill_cache(n)
    n.write_config(FLOW_BOMB)
    lg = log()
    reconcile.hook_up(n.paths, "vnet0", fake_nft, lg)
    assert loaded_bridges(fake_nft.transactions[0]) == ["vnet0"]
    assert "nested deeper than" in lg.stream.text
