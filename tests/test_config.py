"""Config validation: bad input names the field; credentials never come from config.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from reactor.config import ConfigError, load_config, load_credentials
from tests.paths import REPO


def _write(tmp_path: Path, raw: dict) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def _base() -> dict:
    return {
        "venue": {"kind": "demo"},
        "accounts": [{"name": "Wu666666"}],
        "targets": [{"min_count": 0, "target": "10", "band": ["9.5", "10.5"]}],
    }


def test_repo_config_is_valid_and_embedded():
    cfg = load_config(REPO / "config.yaml")
    assert cfg.venue.embedded
    assert cfg.venue.scenario is not None and cfg.venue.scenario.exists()
    assert [t.min_count for t in cfg.targets] == [0, 2, 3]


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"targets": [{"min_count": 0, "target": "10", "band": ["11", "12"]}]}, "targets.0"),
        ({"targets": [{"min_count": 1, "target": "10", "band": ["9", "11"]}]}, "min_count 0"),
        ({"accounts": [{"name": "A"}, {"name": "A"}]}, "duplicate account names: A"),
        ({"accounts": [{"name": "A", "role": "boss"}]}, "accounts.0.role"),
        ({"timing": {"debounce_ms": -1}}, "timing.debounce_ms"),
        ({"policy": {"min_action": "0"}}, "policy.min_action"),
        ({"venue": {"kind": "sim", "rest_url": "http://x"}}, "set together"),
        ({"venue": {"kind": "paper"}}, "venue.kind"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_config_names_the_field(tmp_path, patch, fragment):
    raw = _base() | patch
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, raw))
    assert fragment in str(err.value)


def test_secrets_in_config_are_refused(tmp_path):
    raw = _base()
    raw["accounts"][0]["api_key"] = "abc"
    with pytest.raises(ConfigError, match=r"accounts\.0\.api_key: credentials do not belong"):
        load_config(_write(tmp_path, raw))


def test_credentials_from_environment_name_missing_variables(tmp_path):
    cfg = load_config(_write(tmp_path, _base() | {"accounts": [{"name": "wu-66.x"}]}))
    acc = cfg.accounts[0]
    env = {"OKX_WU_66_X_API_KEY": "k", "OKX_WU_66_X_SECRET_KEY": "s"}
    with pytest.raises(ConfigError, match="set OKX_WU_66_X_PASSPHRASE") as err:
        load_credentials(cfg, acc, env)
    assert "s" not in str(err.value).split("set")[0].split(":")[-1]
    creds = load_credentials(cfg, acc, env | {"OKX_WU_66_X_PASSPHRASE": "p"})
    assert (creds.api_key, creds.secret_key, creds.passphrase) == ("k", "s", "p")
    assert "s" not in repr(creds).replace("Credentials", "")


def test_credentials_file_must_be_0600(tmp_path):
    creds = tmp_path / "creds.yaml"
    creds.write_text(
        yaml.safe_dump({"Wu666666": {"api_key": "k", "secret_key": "s", "passphrase": "p"}})
    )
    os.chmod(creds, 0o644)
    cfg = load_config(_write(tmp_path, _base() | {"credentials_file": "creds.yaml"}))
    with pytest.raises(ConfigError, match="too open; run chmod 600"):
        load_credentials(cfg, cfg.accounts[0], {})
    os.chmod(creds, 0o600)
    assert load_credentials(cfg, cfg.accounts[0], {}).passphrase == "p"


def _reactor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=env,
    )


def test_check_config_exit_codes(tmp_path):
    ok = _reactor("check-config", "--config", "config.yaml")
    assert ok.returncode == 0, ok.stderr
    assert '"config.ok"' in ok.stdout
    bad = _write(tmp_path, _base() | {"timing": {"cooldown_s": "soon"}})
    res = _reactor("check-config", "--config", str(bad))
    assert res.returncode == 2
    assert "timing.cooldown_s" in res.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKX_")}
    res = _reactor("check-config", "--config", str(_write(tmp_path, _base())), env=env)
    assert res.returncode == 2
    assert "OKX_WU666666_API_KEY" in res.stderr
    missing = _reactor("check-config", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert _reactor("run").returncode == 2  # argparse: --config is required


# --- configs that can never reach the band; duplicate keys ----------------------------------

_TARGETS3 = [
    {"min_count": 0, "target": "10", "band": ["9.5", "10.5"]},
    {"min_count": 2, "target": "20", "band": ["19", "21"]},
    {"min_count": 3, "target": "30", "band": ["28.5", "31.5"]},
]


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"policy": {"min_action": "0.6"}}, "policy.min_action 0.6 is larger than 0.5"),
        ({"policy": {"amount_step": "1"}}, "policy.amount_step 1 is coarser than 0.5"),
        (  # an asymmetric band: the near edge decides
            {"targets": [{"min_count": 0, "target": "10", "band": ["9.95", "12"]}]},
            "policy.min_action 0.1 is larger than 0.05",
        ),
        (  # target on the band edge: a margin just below can never be corrected
            {"targets": [{"min_count": 0, "target": "10", "band": ["10", "11"]}]},
            "targets.0 (band 10-11, target 10)",
        ),
    ],
)
def test_steps_too_coarse_for_a_band_are_refused(tmp_path, patch, fragment):
    raw = _base() | {"targets": _TARGETS3} | patch
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, raw))
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_steps_fitting_every_band_are_accepted(tmp_path):
    raw = _base() | {"targets": _TARGETS3, "policy": {"min_action": "0.5", "amount_step": "0.5"}}
    assert load_config(_write(tmp_path, raw)).policy.min_action == 0.5


def test_duplicate_yaml_keys_are_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "venue: {kind: demo}\n"
        "accounts: [{name: Wu666666}]\n"
        "targets: [{min_count: 0, target: '10', band: ['9.5', '10.5']}]\n"
        "policy: {buffer: '1.5'}\n"
        "policy: {buffer: '0'}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "duplicate key 'policy' (line 5" in str(err.value)


def test_duplicate_keys_nested_and_in_the_cli(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "venue: {kind: demo}\n"
        "accounts: [{name: Wu666666, enabled: true, enabled: false}]\n"
        "targets: [{min_count: 0, target: '10', band: ['9.5', '10.5']}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "reactor", "check-config", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "duplicate key 'enabled' (line 2" in lines[0]


def test_duplicate_account_in_credentials_file_is_refused_without_quoting_it(tmp_path):
    creds = tmp_path / "creds.yaml"
    creds.write_text(
        "Wu666666: {api_key: k-AAAA, secret_key: s-BBBB, passphrase: p-CCCC}\n"
        "Wu666666: {api_key: k-DDDD, secret_key: s-EEEE, passphrase: p-FFFF}\n"
    )
    creds.chmod(0o600)
    cfg = load_config(_write(tmp_path, _base() | {"credentials_file": str(creds)}))
    with pytest.raises(ConfigError) as err:
        load_credentials(cfg, cfg.accounts[0], env={})
    text = str(err.value)
    assert "duplicate key 'Wu666666'" in text
    assert not any(s in text for s in ("AAAA", "BBBB", "CCCC", "DDDD", "EEEE", "FFFF"))


def test_min_blocked_reduce_reaches_the_policy(tmp_path: Path) -> None:
    """``policy.min_blocked_reduce`` is configuration (default 2 USDT, 0 turns it off)."""
    base = _base()
    assert load_config(_write(tmp_path, base)).policy_config().min_blocked_reduce == Decimal("2")
    base["policy"] = {"min_blocked_reduce": "0"}
    assert load_config(_write(tmp_path, base)).policy_config().min_blocked_reduce == Decimal("0")
    base["policy"] = {"min_blocked_reduce": "-1"}
    with pytest.raises(ConfigError, match="min_blocked_reduce"):
        load_config(_write(tmp_path, base))


# --- storage and high availability (issue 17) -------------------------------------------------

_PG = {"kind": "postgres", "dsn": "host=/run/postgresql dbname=reactor"}


def test_storage_defaults_to_sqlite_without_ha(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, _base()))
    assert cfg.storage.kind == "sqlite" and cfg.storage.dsn is None
    assert cfg.ha is None


def test_ha_on_postgres_with_production_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, _base() | {"storage": _PG, "ha": {"scope": "shard:a"}}))
    assert cfg.ha is not None
    assert (cfg.ha.lease_ttl_s, cfg.ha.renew_interval_s) == (45.0, 5.0)
    assert (cfg.ha.sign_window_s, cfg.ha.sign_margin_s) == (30.0, 5.0)
    assert cfg.ha.signing_s == 10.0
    assert cfg.ha.instance  # the host name unless given


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"ha": {"scope": "a"}}, "ha: needs storage.kind postgres"),
        ({"storage": {"kind": "postgres"}}, "storage: kind postgres needs dsn"),
        ({"storage": {"dsn": "dbname=x"}}, "storage: dsn is for kind postgres"),
        (
            {"storage": {"kind": "postgres", "dsn": "dbname=x password=hunter22"}},
            "a password does not belong in the config file",
        ),
        (
            {"storage": {"kind": "postgres", "dsn": "postgresql://me:hunter22@db/x"}},
            "a password does not belong in the config file",
        ),
        (
            {"storage": _PG, "ha": {"scope": "a", "lease_ttl_s": 30}},
            "lease_ttl_s 30.0 must exceed sign_window_s + sign_margin_s",
        ),
        (
            {"storage": _PG, "ha": {"scope": "a", "renew_interval_s": 10}},
            "renew_interval_s 10.0 must be below",
        ),
        ({"storage": _PG, "ha": {"instance": "x"}}, "ha.scope: Field required"),
    ],
)
def test_bad_storage_or_ha_is_one_clear_line(tmp_path, patch, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, _base() | patch))
    text = str(err.value)
    assert fragment in text
    assert "\n" not in text
    assert "hunter22" not in text


def test_ha_without_postgres_exits_2_with_one_line(tmp_path):
    res = _reactor(
        "check-config", "--config", str(_write(tmp_path, _base() | {"ha": {"scope": "a"}}))
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "ha: needs storage.kind postgres" in lines[0], res.stderr
