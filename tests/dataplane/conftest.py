"""pytest wiring for the dataplane tier: one QEMU boot per release and mode,
shared by all of that mode's checks; the matrices are printed in the terminal
summary."""

import os

import pytest

from . import guest, report

_RUNS = {}          # (release, mode) -> guest.Run, or the exception its boot raised


@pytest.fixture(scope="session")
def dataplane(tmp_path_factory):
    """dataplane(release, mode) -> guest.Run; the guest boots on first use."""
    def get(release, mode):
        key = (release, mode)
        if key not in _RUNS:
            try:
                out = tmp_path_factory.mktemp(f"dataplane-{release}-{mode}")
                _RUNS[key] = guest.boot(mode, out, release=release)[mode]
            except Exception as e:          # remembered: one boot per mode, even when it fails
                _RUNS[key] = e
        run = _RUNS[key]
        if isinstance(run, guest.Unavailable) and not guest.in_ci():
            pytest.skip(f"dataplane {release} {mode}: {run}")     # under CI=true: a failure, below
        if isinstance(run, Exception):
            pytest.fail(f"dataplane {release} {mode}: {run}", pytrace=False)
        return run
    return get


def pytest_terminal_summary(terminalreporter):
    if not _RUNS:
        return
    tr = terminalreporter
    for (release, mode), run in _RUNS.items():
        tr.write_sep("=", f"dataplane matrix, {guest.RELEASE_NAMES[release]} ({release}), mode {mode}")
        if isinstance(run, Exception):
            tr.write_line(f"not run: {run}")
            continue
        install = run.data.get("install", {})
        debs = " ".join(os.path.basename(d) for d in install.get("debs", []))
        tr.write_line(f"guest: {run.data.get('system', '-')}; {run.seconds} s")
        tr.write_line(f"guest install: {install.get('method', '-')} {debs}; "
                      f"pve-microseg: {install.get('pve-microseg', 'not installed')}")
        for line in report.matrix_lines(run):
            tr.write_line(line)
    warning = guest.stale_deb_warning()
    if warning:
        tr.write_line(f"WARNING: {warning}")
