"""pytest wiring for the dataplane tier: one QEMU boot per mode, shared by
all of that mode's checks; the matrix is printed in the terminal summary."""

import os

import pytest

from . import guest, report

_RUNS = {}          # mode -> guest.Run, or the exception its boot raised


@pytest.fixture(scope="session")
def dataplane(tmp_path_factory):
    """dataplane(mode) -> guest.Run; the guest boots on first use of a mode."""
    def get(mode):
        if mode not in _RUNS:
            try:
                _RUNS[mode] = guest.boot(mode, tmp_path_factory.mktemp(f"dataplane-{mode}"))[mode]
            except Exception as e:          # remembered: one boot per mode, even when it fails
                _RUNS[mode] = e
        run = _RUNS[mode]
        if isinstance(run, guest.Unavailable) and not guest.in_ci():
            pytest.skip(f"dataplane {mode}: {run}")     # under CI=true: a failure, below
        if isinstance(run, Exception):
            pytest.fail(f"dataplane {mode}: {run}", pytrace=False)
        return run
    return get


def pytest_terminal_summary(terminalreporter):
    if not _RUNS:
        return
    tr = terminalreporter
    for mode, run in _RUNS.items():
        tr.write_sep("=", f"dataplane matrix, mode {mode}")
        if isinstance(run, Exception):
            tr.write_line(f"not run: {run}")
            continue
        install = run.data.get("install", {})
        debs = " ".join(os.path.basename(d) for d in install.get("debs", []))
        tr.write_line(f"guest install: {install.get('method', '-')} {debs}; "
                      f"pve-microseg: {install.get('pve-microseg', 'not installed')}")
        for line in report.matrix_lines(run):
            tr.write_line(line)
    warning = guest.stale_deb_warning()
    if warning:
        tr.write_line(f"WARNING: {warning}")
