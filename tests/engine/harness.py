"""Run the real reactor (app.start/stop) against a simulator over real sockets.

The helpers are the package's supported test-support module, :mod:`reactor.testing`;
this module keeps the names the engine and fault tests import.
"""

from __future__ import annotations

from typing import Any

import pytest

from reactor.testing import (
    TARGETS,
    LogCapture,
    SimAdmin,
    credentials_env,
    running,
    wait_for,
    write_config,
)

__all__ = [
    "TARGETS",
    "LogCapture",
    "SimAdmin",
    "running",
    "set_credentials",
    "wait_for",
    "write_config",
]


def set_credentials(monkeypatch: pytest.MonkeyPatch, scenario: dict[str, Any]) -> None:
    for name, value in credentials_env(scenario).items():
        monkeypatch.setenv(name, value)
