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


def field_types(payload: Any, prefix: str = "") -> dict[str, str]:
    """Every field of a JSON payload with its JSON type, as dotted paths; list elements are
    merged under ``[]`` (``data[].margin: str``), several types joined with ``|``."""
    out: dict[str, set[str]] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            if path:
                out.setdefault(path, set()).add("object")
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            out.setdefault(path, set()).add("array")
            for v in value:
                walk(v, f"{path}[]")
        else:
            out.setdefault(path, set()).add(_json_type(value))

    walk(payload, prefix)
    return {k: "|".join(sorted(v)) for k, v in sorted(out.items())}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def shape_differences(reference: Any, candidate: Any) -> list[str]:
    """Where ``candidate`` (the simulator) lacks a field of ``reference`` (OKX) or gives it
    another JSON type; fields only the candidate has are not differences."""
    ref, cand = field_types(reference), field_types(candidate)
    out = []
    for path, kind in ref.items():
        if path not in cand:
            out.append(f"missing {path} ({kind})")
        elif cand[path] != kind:
            out.append(f"type of {path}: {kind} in the reference, {cand[path]} here")
    return out
