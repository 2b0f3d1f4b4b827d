"""``reactor probe``: a short, reversible script on one account that records what the venue
sends and derives the facts ``docs/spec/okx-fidelity.md`` §9 leaves open (push model,
``uTime``/``lever`` after a margin call, bill latency, ``estAvailTrans``, the 59301 boundary).

- :mod:`record`: the record stream (frames and answers), with secrets redacted;
- :mod:`facts`: pure fact extraction from a record stream (re-runnable on ``frames.jsonl``);
- :mod:`script`: the steps, over a small :class:`script.Venue` protocol, and their undo;
- :mod:`fixtures`: the captured payloads in the layout of ``tests/fixtures/okx/``;
- :mod:`driver`: the thin I/O shell (httpx via OkxRestClient, websockets) and the summary;
- :mod:`cli`: argument parsing for ``reactor probe``.
"""
