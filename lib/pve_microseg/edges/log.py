"""Messages for the administrator: stderr and the system journal (syslog)."""

import sys
import syslog


class Log:
    def __init__(self, ident="pve-microseg", stream=None, use_syslog=True):
        self.stream = sys.stderr if stream is None else stream
        self.use_syslog = use_syslog
        if use_syslog:
            syslog.openlog(ident, syslog.LOG_PID, syslog.LOG_DAEMON)

    def _emit(self, prio, prefix, msg):
        if self.use_syslog:
            for line in str(msg).splitlines() or [""]:
                syslog.syslog(prio, line)
        print(f"{prefix}{msg}", file=self.stream)

    def info(self, msg):
        self._emit(syslog.LOG_INFO, "", msg)

    def warning(self, msg):
        self._emit(syslog.LOG_WARNING, "warning: ", msg)

    def error(self, msg):
        self._emit(syslog.LOG_ERR, "error: ", msg)
