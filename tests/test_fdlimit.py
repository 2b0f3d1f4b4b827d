"""RLIMIT_NOFILE raised at start, EMFILE recognised and logged by name (in child processes, so
the test runner's own limit is never touched)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap

from reactor.fdlimit import EmfileReporter, is_emfile, recommended_nofile


def _child(code: str) -> list[dict[str, object]]:
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def test_soft_limit_is_raised_to_the_hard_limit() -> None:
    lines = _child(
        """
        import json, resource
        from reactor import log
        log.configure("info", "json")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, min(hard, 4096)))
        from reactor.fdlimit import raise_nofile_limit
        print(json.dumps({"returned": list(raise_nofile_limit(accounts=10))}))
        print(json.dumps({"now": list(resource.getrlimit(resource.RLIMIT_NOFILE))}))
        """
    )
    limit = next(e for e in lines if e.get("event") == "process.fd.limit")
    assert limit["level"] == "info"
    assert limit["soft_before"] == 64
    assert limit["soft"] == limit["hard"]
    now = next(e["now"] for e in lines if "now" in e)
    assert now[0] == now[1] == limit["hard"]


def test_a_hard_limit_below_the_need_is_a_warning() -> None:
    lines = _child(
        """
        import resource
        from reactor import log
        log.configure("info", "json")
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 128))
        from reactor.fdlimit import raise_nofile_limit
        raise_nofile_limit(accounts=500)
        """
    )
    limit = next(e for e in lines if e.get("event") == "process.fd.limit")
    assert limit["level"] == "warning"
    assert limit["soft"] == 128 and limit["recommended"] == recommended_nofile(500)


def test_real_emfile_is_logged_by_name() -> None:
    lines = _child(
        """
        import resource, socket
        from reactor import log
        log.configure("info", "json")
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
        from reactor.fdlimit import log_if_emfile
        held = []
        try:
            while True:
                held.append(socket.socket())
        except OSError as exc:
            try:
                raise ConnectionError("All connection attempts failed") from exc
            except ConnectionError as wrapped:
                assert log_if_emfile(wrapped, account="a", what="margin-balance")
                assert log_if_emfile(wrapped, account="a")  # within 10 s: counted, not logged
        """
    )
    (line,) = [e for e in lines if e.get("event") == "process.fd.exhausted"]
    assert line["level"] == "error" and line["account"] == "a"
    assert line["soft"] == 32
    # Counting /proc/self/fd needs a descriptor too: at the limit the count is null, not a guess.
    assert line["open_fds"] is None or line["open_fds"] >= 30


def test_is_emfile_walks_causes_contexts_and_groups() -> None:
    emfile = OSError(errno.EMFILE, "Too many open files")
    try:
        try:
            raise emfile
        except OSError:
            raise RuntimeError("wrapped") from None  # context suppressed for display only
    except RuntimeError as exc:
        assert is_emfile(exc)
    assert is_emfile(ExceptionGroup("many", [ValueError("x"), emfile]))
    assert not is_emfile(OSError(errno.ECONNREFUSED, "refused"))
    assert not is_emfile(None)


def test_reporter_logs_once_per_interval() -> None:
    now = [0.0]
    rep = EmfileReporter(interval_s=10, clock=lambda: now[0])
    emfile = OSError(errno.EMFILE, "Too many open files")
    assert not rep.report(ValueError("other"))
    assert rep.report(emfile)
    assert rep._suppressed == 0
    now[0] = 5
    assert rep.report(emfile)
    assert rep._suppressed == 1
    now[0] = 11
    assert rep.report(emfile)
    assert rep._suppressed == 0


def test_httpx_failure_under_emfile_is_recognised() -> None:
    """What the REST client really sees when descriptors run out is EMFILE to is_emfile,
    whatever httpx/anyio wrap it in."""
    lines = _child(
        """
        import asyncio, json, resource, socket, threading
        from http.server import BaseHTTPRequestHandler, HTTPServer
        import httpx
        from reactor.fdlimit import is_emfile

        class Ok(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
            def log_message(self, *args):
                pass

        srv = HTTPServer(("127.0.0.1", 0), Ok)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{srv.server_address[1]}/"

        async def main():
            async with httpx.AsyncClient() as warm:
                await warm.get(url)  # imports done while descriptors are free
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
            held = []
            try:
                while True:
                    held.append(socket.socket())
            except OSError:
                pass
            try:
                async with httpx.AsyncClient() as c:
                    await c.get(url, timeout=2)
                print(json.dumps({"failed": False}))
            except Exception as exc:
                print(json.dumps({"failed": True, "type": type(exc).__name__,
                                  "emfile": is_emfile(exc)}))
            for s in held:
                s.close()

        asyncio.run(main())
        """
    )
    (result,) = lines
    assert result["failed"] is True and result["emfile"] is True, result
