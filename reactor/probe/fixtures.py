"""The payloads a probe captured, laid out as files for ``tests/fixtures/okx/``.

Pure: records in, ``{relative path: payload}`` out; the driver writes them. One file per
kind of answer, the body exactly as the venue sent it (parsed JSON):

- ``rest/<path>.json``: the first successful answer (``code`` "0", with data when any had
  data) of each REST path, e.g. ``rest/account/bills.json``;
- ``rest/<path>.<code>.json``: the first error answer of each code, e.g.
  ``rest/account/position/margin-balance.59301.json``;
- ``ws/positions.<eventType>.json`` (``snapshot``, ``event_update``, or ``untyped`` when the
  push had no ``eventType``): the first push of each kind, with data when any had data;
- ``ws/event.<event>.json``: the first ``login``, ``subscribe``, ``error``,
  ``channel-conn-count``... frame.

The account's ``uid`` (in every push's ``arg``) is replaced by ``"<uid>"``: the files are
meant to be committed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from reactor.probe.facts import Record

API_PREFIX = "/api/v5/"
UID_MASK = "<uid>"


def _slug(path: str) -> str:
    path = path.split("?", 1)[0]
    path = path.removeprefix(API_PREFIX).strip("/")
    return re.sub(r"[^A-Za-z0-9_./-]", "_", path) or "root"


def _has_data(payload: Any) -> bool:
    return isinstance(payload, dict) and bool(payload.get("data"))


def _mask_uid(payload: Any) -> Any:
    if isinstance(payload, dict):
        arg = payload.get("arg")
        if isinstance(arg, dict) and "uid" in arg:
            payload = {**payload, "arg": {**arg, "uid": UID_MASK}}
    return payload


def fixture_payloads(records: Sequence[Record]) -> dict[str, Any]:
    """Representative payloads of every answer and frame kind in ``records``."""
    out: dict[str, Any] = {}

    def keep(name: str, payload: Any) -> None:
        # The first of its kind, unless a later one has data where the kept one had none.
        if name not in out or (not _has_data(out[name]) and _has_data(payload)):
            out[name] = payload

    for r in records:
        kind = r.get("kind")
        text = r.get("text") if kind == "ws_in" else r.get("body")
        if kind not in ("ws_in", "http_response") or not isinstance(text, str):
            continue
        try:
            payload = json.loads(text)
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        if kind == "http_response":
            code = str(payload.get("code", ""))
            suffix = "" if code == "0" else f".{code or r.get('status')}"
            keep(f"rest/{_slug(str(r.get('path', '')))}{suffix}.json", payload)
        elif "event" in payload:
            keep(f"ws/event.{_slug(str(payload['event']))}.json", payload)
        elif isinstance(payload.get("arg"), dict) and "data" in payload:
            channel = _slug(str(payload["arg"].get("channel", "unknown")))
            event_type = _slug(str(payload.get("eventType", "untyped")))
            keep(f"ws/{channel}.{event_type}.json", _mask_uid(payload))
    return dict(sorted(out.items()))
