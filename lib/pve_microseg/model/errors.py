"""Exit statuses and exceptions: one type per failure an administrator can act on.

Every message names where the problem is (file, line, field) and what was
expected, so it can be fixed without reading our code.  Each exception
carries the ExitCode the command line ends with.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit statuses of `pve-microseg` (documented in pve-microseg(8))."""

    OK = 0
    ERROR = 1               # any other error
    CONFIG = 2              # invalid configuration, nothing changed
    NFT_REFUSED = 3         # nftables refused the change, nothing changed
    NFT_UNAVAILABLE = 4     # python3-nftables or kernel support missing
    FIREWALL_FILE = 5       # a guest's .fw file cannot be used as it is
    CLUSTER_FS = 6          # /etc/pve cannot be written now
    PVESH = 7               # pvesh refused a call
    PREREQUISITE = 8        # a prerequisite of 'vnet enable' is missing
    UNPROTECTED = 9         # 'status' found something unprotected
    FINDINGS = 10           # 'check' found errors or warnings
    NODE_RELOAD = 11        # 'vnet enable --apply': a node's network reload failed


class MicrosegError(Exception):
    """Base class: any error pve-microseg reports to the administrator."""

    exit_code = ExitCode.ERROR

    def to_json(self):
        return {"message": str(self), "exit-code": int(self.exit_code)}


class ConfigError(MicrosegError):
    """A configuration file is invalid.  Nothing was changed."""

    exit_code = ExitCode.CONFIG

    def __init__(self, path, line, field, message):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"{field}: " if field else ""
        super().__init__(f"{where}: {what}{message}")

    def to_json(self):
        return dict(super().to_json(), file=self.path, line=self.line, field=self.field)


class SdnConfigError(ConfigError):
    """The SDN configuration under /etc/pve/sdn cannot be read."""


class GuestConfigError(ConfigError):
    """A guest's configuration (<vmid>.conf) cannot be read."""


class NftablesError(MicrosegError):
    """libnftables refused our transaction; the kernel ruleset is unchanged."""

    exit_code = ExitCode.NFT_REFUSED


class NftablesUnavailable(MicrosegError):
    """python3-nftables or the kernel's nf_tables bridge support is missing."""

    exit_code = ExitCode.NFT_UNAVAILABLE


class FirewallFileError(MicrosegError):
    """A guest's .fw file cannot be used as it is; it was left unchanged."""

    exit_code = ExitCode.FIREWALL_FILE


class ClusterFsError(MicrosegError):
    """/etc/pve cannot be written now (no quorum, lock timeout, size limit)."""

    exit_code = ExitCode.CLUSTER_FS


class PveshError(MicrosegError):
    """pvesh refused a call (or is missing); the message is pvesh's own."""

    exit_code = ExitCode.PVESH


class PrerequisiteError(MicrosegError):
    """The cluster is not ready for a VNet firewall; nothing was changed."""

    exit_code = ExitCode.PREREQUISITE


class GraphvizError(MicrosegError):
    """graphviz's dot is missing or failed to draw a picture (`graph`); the
    .dot output needs no graphviz."""


class GuestRefused(MicrosegError):
    """The hookscript's strict policy refuses this guest's configuration."""


class RolledBack(MicrosegError):
    """A change failed half-way and what it had done was undone; the message
    says what failed and what was undone, the exit status is the cause's."""

    def __init__(self, cause, undone):
        super().__init__(f"{cause}\n{undone}")
        self.cause = cause

    @property
    def exit_code(self):
        return self.cause.exit_code


class UnsupportedRule(MicrosegError):
    """`explain` met a rule it cannot evaluate (not a shape pve-microseg
    generates: the table was changed by hand, or the evaluator lags behind
    the generator).  It refuses rather than guess a verdict."""


class EndpointError(MicrosegError):
    """An `explain` endpoint names no guest NIC, gateway or address this
    configuration knows."""
