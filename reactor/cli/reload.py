"""``reactor reload``: SIGHUP the running reactor and wait for its answer (``ExecReload=``).

Under ``Type=notify`` systemd's reload job ends when ``ExecReload=`` exits, and a service has
no way to report a failed reload (``READY=1`` has no failure form; sd_notify(3)): with
``kill -HUP`` a refused reload returned 0 (issue 20, item 3). This helper makes the result the
exit status: 0 applied, 1 refused or no answer in time (the reason on stderr), 2 bad input or
no reactor holding the state dir. The reactor writes each outcome to
``<state_dir>/reload-result.json`` (:func:`reactor.store.state_dir.write_reload_result`).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from reactor.config import Config, ConfigError
from reactor.store.state_dir import read_lock_holder, read_reload_result

__all__ = ["reload_command"]

POLL_S = 0.05


def reload_command(cfg: Config, *, pid: int | None, timeout_s: float) -> int:
    holder = read_lock_holder(cfg.state_dir)
    if holder is None:
        raise ConfigError(
            f"state_dir {cfg.state_dir}: no running reactor holds it; nothing to reload"
        )
    if pid is not None and pid != holder:
        raise ConfigError(f"--pid {pid}: the reactor holding {cfg.state_dir} is pid {holder}")
    before = read_reload_result(cfg.state_dir)
    try:
        os.kill(holder, signal.SIGHUP)
    except ProcessLookupError:
        raise ConfigError(f"pid {holder}: no such process (the reactor just stopped?)") from None
    except PermissionError:
        raise ConfigError(f"pid {holder}: not allowed to signal it (run as its user)") from None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = read_reload_result(cfg.state_dir)
        if result is not None and result != before and result.get("pid") == holder:
            if result.get("applied") is True:
                print("reload applied", flush=True)
                return 0
            print(f"reactor: reload refused: {result.get('error')}", file=sys.stderr)
            return 1
        time.sleep(POLL_S)
    print(f"reactor: no reload answer from pid {holder} within {timeout_s:g} s", file=sys.stderr)
    return 1
