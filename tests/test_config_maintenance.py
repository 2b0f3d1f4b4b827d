"""``maintenance:`` in config.yaml: loaded, and refused with one line naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reactor.config import ConfigError, load_config
from reactor.domain.fills import DetectRule
from tests.paths import REPO


def write(tmp_path: Path, maintenance: Any) -> Path:
    raw = {
        "venue": {"kind": "demo"},
        "accounts": [{"name": "Wu666666"}],
        "targets": [{"min_count": 0, "target": "10", "band": ["9.5", "10.5"]}],
        "maintenance": maintenance,
    }
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_defaults_and_values(tmp_path: Path) -> None:
    path = write(tmp_path, None)
    raw = yaml.safe_load(path.read_text())
    del raw["maintenance"]
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    assert cfg.maintenance.rule() is None and cfg.maintenance.grace_ms == 300
    # make run counts the demo desk's tagged fills (scenarios/demo.yaml desk: tag maint)
    assert load_config(REPO / "config.yaml").maintenance.rule() == DetectRule(tag="maint")
    cfg = load_config(
        write(tmp_path, {"detect": {"clOrdId_prefix": "mnt"}, "recover_from": ["bills", "orders"]})
    )
    assert cfg.maintenance.rule() == DetectRule(cl_ord_id_prefix="mnt")
    assert cfg.maintenance.recover_from == ("bills", "orders")
    example = load_config(REPO / "deploy" / "config.example.yaml")
    assert example.maintenance.rule() == DetectRule(tag="maint")


@pytest.mark.parametrize(
    ("maintenance", "fragment"),
    [
        ({"detect": {"tag": "a", "clOrdId_prefix": "b"}}, "maintenance.detect"),
        ({"detect": {"tag": "x" * 17}}, "maintenance.detect.tag"),
        ({"detect": {"clOrdId_prefix": "m-1"}}, "maintenance.detect.clOrdId_prefix"),
        ({"grace_ms": -5}, "maintenance.grace_ms"),
        ({"record_grace_ms": "soon"}, "maintenance.record_grace_ms"),
        ({"recover_from": ["trades"]}, "maintenance.recover_from"),
        ({"recover_from": []}, "maintenance.recover_from"),
        ({"api_token": "s3cret"}, "maintenance"),
    ],
)
def test_bad_section_names_the_field(tmp_path: Path, maintenance: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, maintenance))
    assert fragment in str(err.value)
