"""Log output for people and for journald: JSON when not a terminal, the console renderer with
colours and a fixed field order on one, and the sd-daemon ``<N>`` priority prefix when the
stream is the journal stream systemd handed over (``JOURNAL_STREAM``)."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from reactor import log


@pytest.fixture(autouse=True)
def _restore() -> object:
    yield None
    log.configure("info", "json")


def _journal_env(path: Path) -> dict[str, str]:
    st = os.stat(path)
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_auto_is_json_when_not_a_terminal() -> None:
    buf = io.StringIO()
    assert log.resolve_format("auto", buf, env={}) == "json"
    log.configure("info", "auto", stream=buf)
    log.get_logger("t").info("reactor.started", accounts=3)
    assert json.loads(buf.getvalue())["event"] == "reactor.started"


def test_auto_is_coloured_console_on_a_terminal_with_fixed_field_order() -> None:
    master, slave = os.openpty()
    with open(slave, "w", closefd=True) as tty:
        assert log.resolve_format("auto", tty, env={}) == "console"
        log.configure("info", "auto", stream=tty)
        log.get_logger("t").error(
            "margin.adjust.failed", zeta="z", code="59301", posSide="long", account="a"
        )
        tty.flush()
        out = os.read(master, 4096).decode()
    os.close(master)
    assert "\x1b[" in out  # ANSI colours
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "margin.adjust.failed" in plain
    order = [plain.index(k + "=") for k in ("account", "posSide", "code", "zeta")]
    assert order == sorted(order)


def test_journald_lines_carry_their_priority(tmp_path: Path) -> None:
    path = tmp_path / "journal-stream"
    with path.open("w") as stream:
        env = _journal_env(path)
        assert log.is_journald_stream(stream, env)
        assert log.resolve_format("auto", stream, env) == "json"
        processors = log.output_processors("json", stream, env)
        import structlog

        structlog.configure(
            processors=[structlog.processors.add_log_level, *processors],
            logger_factory=structlog.PrintLoggerFactory(stream),
        )
        logger = log.get_logger("t")
        logger.error("account.stopped", account="a")
        logger.warning("ws.disconnected", account="a")
        logger.info("ws.connected", account="a")
    lines = path.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<3>", "<4>", "<6>"]
    assert json.loads(lines[0][3:])["event"] == "account.stopped"


def test_a_redirected_stream_is_not_the_journal(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.touch()
    with (tmp_path / "mine").open("w") as stream:
        assert not log.is_journald_stream(stream, _journal_env(other))
        assert not log.is_journald_stream(stream, {"JOURNAL_STREAM": "garbage"})
        assert not log.is_journald_stream(io.StringIO(), _journal_env(other))  # type: ignore[arg-type]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        log.resolve_format("xml", io.StringIO())


def test_run_takes_log_flags() -> None:
    from reactor.cli.main import _parser

    args = _parser().parse_args(
        ["run", "--config", "c.yaml", "--log-format", "console", "--log-level", "debug"]
    )
    assert (args.log_format, args.log_level) == ("console", "debug")
    args = _parser().parse_args(["run", "--config", "c.yaml"])
    assert (args.log_format, args.log_level) == (None, None)  # the config decides
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["run", "--config", "c.yaml", "--log-format", "xml"])
    assert exc.value.code == 2
