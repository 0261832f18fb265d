"""The manual page and --help describe the same commands, options and variables."""

import argparse
import re

from conftest import ROOT
from pve_microseg.entry import cli
from pve_microseg.edges import paths

MAN = (ROOT / "debian/pve-microseg.8").read_text()
MAN_TEXT = MAN.replace("\\-", "-")


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_and_option_is_in_the_man_page():
    parser = cli.build_parser()
    for name, sub in _subparsers(parser).items():
        assert re.search(rf"^\.B {name}$", MAN, re.M), f"command {name} missing from the man page"
        for action in sub._actions:
            for opt in action.option_strings:
                if opt.startswith("--"):
                    assert opt in MAN_TEXT, f"{name} {opt} missing from the man page"


def test_every_environment_variable_is_documented():
    for var, default in paths._ENV.values():
        assert var in MAN_TEXT and default in MAN_TEXT
        assert var in cli.EPILOG and default in cli.EPILOG


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make check" in readme
    assert "make check" in (ROOT / ".ci/run").read_text()


def test_hookscript_man_page_names_every_setting_and_phase():
    from pve_microseg.parse import microseg_yaml as config
    from pve_microseg import guesthook

    man = (ROOT / "debian/pve-microseg-hookscript.8").read_text().replace("\\-", "-")
    for key in config.HOOKSCRIPT_KEYS + ("isolate-ports", "fail-closed", "fail-open"):
        assert key in man, f"{key} missing from pve-microseg-hookscript.8"
    for key in config.GUEST_KEYS:
        assert key.replace("<N>", "") in man, f"guests key {key} missing from pve-microseg-hookscript.8"
    for phase in guesthook.PHASES:
        assert phase in man
    for var in ("PVE_MIGRATED_FROM", "PVE_MICROSEG_NODE", "PVE_MICROSEG_LOCK_TIMEOUT"):
        assert var in man


def test_bash_completion_knows_every_command_and_option():
    comp = (ROOT / "bash-completion/pve-microseg").read_text()
    parser = cli.build_parser()
    for name, sub in _subparsers(parser).items():
        assert name in comp.split('commands="')[1].split('"')[0], f"completion lacks command {name}"
        subs = [sub] + [a.choices[c] for a in sub._actions if isinstance(a, argparse._SubParsersAction)
                        for c in a.choices]
        for p in subs:
            for action in p._actions:
                for opt in action.option_strings:
                    if opt.startswith("--") and opt != "--help":
                        assert opt in comp, f"completion lacks {name} {opt}"
