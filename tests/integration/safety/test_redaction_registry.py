"""Secrets registered one by one (1,000 sub-accounts at start-up) are all masked, with the
pattern built once when it is first needed rather than on every registration."""

from __future__ import annotations

from reactor import redaction
from reactor.okx.credentials import Credentials
from reactor.redaction import MASK, redact_text, register_secrets


def test_every_secret_registered_since_the_last_use_is_masked() -> None:
    register_secrets(["lazy-first-secret-0001"])
    assert redact_text("x lazy-first-secret-0001 y") == f"x {MASK} y"
    creds = [
        Credentials(f"lazy-key-{i:04d}", f"lazy-sec-{i:04d}", f"lazy-pp-{i:04d}")
        for i in range(300)
    ]
    text = " ".join(f"lazy-key-{i:04d} lazy-sec-{i:04d} lazy-pp-{i:04d}" for i in range(300))
    masked = redact_text(text)
    assert "lazy-" not in masked
    assert masked.count(MASK) == 900
    assert len(creds) == 300


def test_registering_does_not_build_the_pattern_until_it_is_used() -> None:
    redact_text("warm up")  # the pattern is current
    before = redaction._known_re
    for i in range(50):
        register_secrets([f"lazy-batch-{i:04d}-secret"])
    assert redaction._known_re is before  # nothing compiled per registration
    assert redact_text("lazy-batch-0049-secret") == MASK
    assert redaction._known_re is not before
