"""The payloads a probe captured, as files in the layout of ``tests/fixtures/okx/``.

That folder holds one real payload per file, named ``<what>_<source>.json`` (e.g.
``adjust_leverage_info_doc.json``, ``bill_margin_transfer_ccxt.json``), with a README table
naming each source, and tests compare field names and value types with the simulator's. A
probe writes the same ``<what>.json`` names into its own folder, with a README.md table, so the
folder drops in as ``tests/fixtures/okx/<name>/`` (docs/operations.md: "Probing OKX demo trading"):

- ``<endpoint>.json``: the first successful answer (``code`` "0", with data when any had data)
  of each REST path, named by its last segment: ``bills.json``, ``adjust_leverage_info.json``,
  ``positions.json``, ``margin_balance.json``, ``instruments.json``...;
- ``<endpoint>_<code>.json``: the first error answer of each code, e.g.
  ``margin_balance_59301.json``;
- ``bill_margin_transfer.json``: the first type-6 bill record (subType 160/161) seen;
- ``bill_funding.json``: the first funding bill record (type 8) seen;
- ``ws_positions_<eventType>.json`` (``snapshot``, ``event_update``, or ``untyped`` when the
  push had no ``eventType``): the first push of each kind, with data when any had data;
- ``ws_event_<event>.json``: the first ``login``, ``subscribe``, ``error``,
  ``channel_conn_count``... frame.

Pure: records in, ``{file name: payload}`` out; the driver writes them. The account's ``uid``
(in every push's ``arg``) is replaced by ``"<uid>"``: the files are meant to be committed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from reactor.okx.bills import BILL_TYPE_FUNDING, BILL_TYPE_MARGIN, TRANSFER_SUBTYPE
from reactor.probe.facts import Record

UID_MASK = "<uid>"


def _name(text: str) -> str:
    """``account/adjust-leverage-info?x=1`` -> ``adjust_leverage_info``."""
    last = text.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "_", last.lower()).strip("_") or "root"


def _has_data(payload: Any) -> bool:
    return isinstance(payload, dict) and bool(payload.get("data"))


def _mask_uid(payload: Any) -> Any:
    if isinstance(payload, dict):
        arg = payload.get("arg")
        if isinstance(arg, dict) and "uid" in arg:
            payload = {**payload, "arg": {**arg, "uid": UID_MASK}}
    return payload


def _margin_bill(payload: dict[str, Any]) -> dict[str, Any] | None:
    data = payload.get("data")
    for bill in data if isinstance(data, list) else []:
        if (
            isinstance(bill, dict)
            and str(bill.get("type")) == BILL_TYPE_MARGIN
            and str(bill.get("subType")) in TRANSFER_SUBTYPE.values()
        ):
            return bill
    return None


def _funding_bill(payload: dict[str, Any]) -> dict[str, Any] | None:
    data = payload.get("data")
    for bill in data if isinstance(data, list) else []:
        if isinstance(bill, dict) and str(bill.get("type")) == BILL_TYPE_FUNDING:
            return bill
    return None


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
            name = _name(str(r.get("path", "")))
            keep(
                f"{name}.json" if code == "0" else f"{name}_{code or r.get('status')}.json", payload
            )
            bill = _margin_bill(payload) if name == "bills" and code == "0" else None
            if bill is not None:
                out.setdefault("bill_margin_transfer.json", bill)
            funding = _funding_bill(payload) if name == "bills" and code == "0" else None
            if funding is not None:
                out.setdefault("bill_funding.json", funding)
        elif "event" in payload:
            keep(f"ws_event_{_name(str(payload['event']))}.json", payload)
        elif isinstance(payload.get("arg"), dict) and "data" in payload:
            channel = _name(str(payload["arg"].get("channel", "unknown")))
            event_type = _name(str(payload.get("eventType", "untyped")))
            keep(f"ws_{channel}_{event_type}.json", _mask_uid(payload))
    return dict(sorted(out.items()))


def readme(files: Sequence[str], source: str) -> str:
    """The folder's README: one row per file, as ``tests/fixtures/okx/README.md`` lists them."""
    rows = "\n".join(f"| `{f}` | {_describe(f)} | this capture |" for f in files)
    return (
        "# Payloads captured by `reactor probe`\n\n"
        f"Source: {source}. Every frame and answer is in `frames.jsonl`, the facts derived\n"
        "from them in `facts.json`. One payload per kind, as the venue sent it (`uid` masked):\n\n"
        "| file | what | source |\n|---|---|---|\n" + rows + "\n"
    )


def _describe(name: str) -> str:
    stem = name.removesuffix(".json")
    if stem == "bill_margin_transfer":
        return "a type-6 margin-transfer bill record (subType 160/161)"
    if stem == "bill_funding":
        return "a type-8 funding-fee bill record"
    if stem.startswith("ws_event_"):
        return f"WebSocket `{stem.removeprefix('ws_event_')}` event frame"
    if stem.startswith("ws_positions_"):
        return f"`positions` push, eventType `{stem.removeprefix('ws_positions_')}`"
    return f"REST answer `{stem}`"


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
