"""Exceptions: one type per failure an administrator can act on.

Every message names where the problem is (file, line, field) and what was
expected, so it can be fixed without reading our code.
"""


class MicrosegError(Exception):
    """Base class: any error pve-microseg reports to the administrator."""

    exit_code = 1


class ConfigError(MicrosegError):
    """A configuration file is invalid.  Nothing was changed."""

    exit_code = 2

    def __init__(self, path, line, field, message):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"{field}: " if field else ""
        super().__init__(f"{where}: {what}{message}")


class SdnConfigError(ConfigError):
    """The SDN configuration under /etc/pve/sdn cannot be read."""


class NftablesError(MicrosegError):
    """libnftables refused our transaction; the kernel ruleset is unchanged."""

    exit_code = 3


class NftablesUnavailable(MicrosegError):
    """python3-nftables or the kernel's nf_tables bridge support is missing."""

    exit_code = 4


class GuestConfigError(ConfigError):
    """A guest's configuration (<vmid>.conf) cannot be read."""


class FirewallFileError(MicrosegError):
    """A guest's .fw file cannot be used as it is; it was left unchanged."""

    exit_code = 5


class ClusterFsError(MicrosegError):
    """/etc/pve cannot be written now (no quorum, lock timeout, size limit)."""

    exit_code = 6
