"""Configuration: ``config.yaml`` validated by pydantic at start-up.

Errors name the field (``targets.1.band``) so a bad deploy fails fast with one clear line.
Credentials never live here: they come from the environment or a 0600 credentials file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reactor.domain.fills import MaintenanceSection
from reactor.domain.policy import PolicyConfig, TargetRule
from reactor.limits import yaml_depth
from reactor.okx.credentials import Credentials
from reactor.okx.endpoints import (
    DEMO_REST_URL,
    DEMO_WS_PRIVATE_URL,
    LIVE_REST_URL,
    LIVE_WS_PRIVATE_URL,
)
from reactor.redaction import register_secrets

PositiveDecimal = Annotated[Decimal, Field(gt=0)]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0)]


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the field."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping.

    PyYAML keeps the last value silently: a pasted second ``policy:`` block would override the
    first without a word. Refused instead, naming the key and its line.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: SafeLoader reports it itself
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Limits on the config file (reactor/limits.py): a real one is a few KB and 4 levels deep.
CONFIG_MAX_CHARS = 1024 * 1024
CONFIG_MAX_DEPTH = 16


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VenueConfig(_Model):
    kind: Literal["sim", "demo", "live"] = "sim"
    rest_url: str | None = None
    ws_private_url: str | None = None
    scenario: Path | None = None
    price_walk: bool = True

    @model_validator(mode="after")
    def _urls_together(self) -> VenueConfig:
        if (self.rest_url is None) != (self.ws_private_url is None):
            raise ValueError("rest_url and ws_private_url must be set together")
        for url, schemes in (
            (self.rest_url, ("http://", "https://")),
            (self.ws_private_url, ("ws://", "wss://")),
        ):
            if url is not None and not url.startswith(schemes):
                raise ValueError(f"URL {url!r} must start with {' or '.join(schemes)}")
        if self.embedded and self.scenario is None:
            raise ValueError("kind sim without URLs runs the embedded simulator: set scenario")
        return self

    @property
    def embedded(self) -> bool:
        """Kind sim without URL overrides: start the simulator in-process."""
        return self.kind == "sim" and self.rest_url is None

    @property
    def simulated_trading(self) -> bool:
        """Send ``x-simulated-trading: 1`` (demo trading, and the simulator)."""
        return self.kind != "live"

    def urls(self) -> tuple[str, str]:
        if self.rest_url is not None and self.ws_private_url is not None:
            return self.rest_url, self.ws_private_url
        if self.kind == "live":
            return LIVE_REST_URL, LIVE_WS_PRIVATE_URL
        if self.kind == "demo":
            return DEMO_REST_URL, DEMO_WS_PRIVATE_URL
        raise ValueError("embedded simulator URLs are known only once it listens")


class AccountConfig(_Model):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["sub", "main"] = "sub"
    enabled: bool = True

    @property
    def env_prefix(self) -> str:
        return "OKX_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())


class TargetConfig(_Model):
    min_count: int = Field(ge=0)
    target: PositiveDecimal
    band: tuple[PositiveDecimal, PositiveDecimal]

    @model_validator(mode="after")
    def _band_contains_target(self) -> TargetConfig:
        lo, hi = self.band
        if not lo <= self.target <= hi:
            raise ValueError(f"band [{lo}, {hi}] must contain target {self.target}")
        return self


class PolicySection(_Model):
    buffer: NonNegativeDecimal = Decimal("1.5")
    min_action: PositiveDecimal = Decimal("0.1")
    amount_step: PositiveDecimal = Decimal("0.01")
    mmr_rate_fallback: PositiveDecimal = Decimal("0.004")
    max_moved_per_hour: PositiveDecimal = Decimal("1000")
    # A reduction that cannot reach the band (the floor is above it) is sent only when it frees
    # at least this much; 0 turns the rule off (reactor/policy.py PolicyConfig).
    min_blocked_reduce: NonNegativeDecimal = Decimal("2")
    # Margin transfers on one instrument of an account that no call of this reactor made
    # (OKX bills): this many within the window hold its positions instead of fighting back.
    foreign_transfer_limit: int = Field(default=2, ge=1, le=100)
    foreign_transfer_window_s: float = Field(default=600.0, gt=0, le=86_400)


class TimingSection(_Model):
    debounce_ms: int = Field(default=500, ge=0, le=60_000)
    leading_edge: bool = True
    cooldown_s: float = Field(default=5.0, ge=0, le=3600)
    reconcile_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    request_timeout_s: float = Field(default=5.0, gt=0, le=120)
    ledger_poll_ms: int = Field(default=200, gt=0, le=10_000)
    # Private WebSocket: ping after this long without a frame (OKX closes at 30 s idle), a
    # missing pong within the timeout means a dead connection; reconnect backoff cap.
    ws_ping_interval_s: float = Field(default=20.0, gt=0, le=25)
    ws_pong_timeout_s: float = Field(default=10.0, gt=0, le=60)
    ws_backoff_max_s: float = Field(default=30.0, gt=0, le=300)
    retry_max_s: float = Field(default=60.0, gt=0, le=3600)


class MainSection(_Model):
    expected_positions: int = Field(default=22, ge=0)


class StatusSection(_Model):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)


class LogSection(_Model):
    format: Literal["auto", "json", "console"] = "auto"  # auto: console on a tty, else JSON
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Model):
    venue: VenueConfig = VenueConfig(scenario=Path("scenarios/demo.yaml"))
    state_dir: Path = Path("./state")
    credentials_file: Path | None = None
    # Decide and log, never call margin-balance; ``reactor run --dry-run/--no-dry-run``
    # overrides it for one run.
    dry_run: bool = False
    accounts: list[AccountConfig] = Field(min_length=1)
    targets: list[TargetConfig] = Field(min_length=1)
    policy: PolicySection = PolicySection()
    timing: TimingSection = TimingSection()
    main: MainSection = MainSection()
    status: StatusSection = StatusSection()
    log: LogSection = LogSection()
    maintenance: MaintenanceSection = MaintenanceSection()  # counts from fills

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, accounts: list[AccountConfig]) -> list[AccountConfig]:
        names = [a.name for a in accounts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate account names: {', '.join(dupes)}")
        if sum(a.role == "main" for a in accounts) > 1:
            raise ValueError("at most one account may have role main")
        prefixes = [a.env_prefix for a in accounts]
        clash = sorted({p for p in prefixes if prefixes.count(p) > 1})
        if clash:
            raise ValueError(f"account names map to the same variables: {', '.join(clash)}")
        return accounts

    @field_validator("targets")
    @classmethod
    def _targets_start_at_zero(cls, targets: list[TargetConfig]) -> list[TargetConfig]:
        counts = [t.min_count for t in targets]
        if len(set(counts)) != len(counts):
            raise ValueError("min_count values must be unique")
        if 0 not in counts:
            raise ValueError("one entry must have min_count 0")
        return sorted(targets, key=lambda t: t.min_count)

    @model_validator(mode="after")
    def _band_reachable(self) -> Config:
        """Refuse steps too coarse for a band: the reactor could never bring a margin in.

        A margin just outside a band needs a call of about the distance from the target to
        that edge; below ``min_action`` the call is never made, so the position stays out of
        band for good. Amounts are multiples of ``amount_step`` landing within one step of the
        target, so a step wider than that distance can jump over the band.
        """
        step, min_action = self.policy.amount_step, self.policy.min_action
        for i, t in enumerate(sorted(self.targets, key=lambda t: t.min_count)):
            lo, hi = t.band
            reach = min(t.target - lo, hi - t.target)
            where = f"targets.{i} (band {lo}-{hi}, target {t.target})"
            if min_action > reach:
                raise ValueError(
                    f"policy.min_action {min_action} is larger than {reach}, the distance from "
                    f"the target to the nearer band edge in {where}: a margin just outside "
                    "that band could never be corrected"
                )
            if step > reach:
                raise ValueError(
                    f"policy.amount_step {step} is coarser than {reach}, the distance from "
                    f"the target to the nearer band edge in {where}: a correction could jump "
                    "over the band"
                )
        return self

    def policy_config(self) -> PolicyConfig:
        return PolicyConfig(
            targets=tuple(
                TargetRule(t.min_count, t.target, t.band[0], t.band[1]) for t in self.targets
            ),
            buffer=self.policy.buffer,
            min_action=self.policy.min_action,
            amount_step=self.policy.amount_step,
            mmr_rate_fallback=self.policy.mmr_rate_fallback,
            min_blocked_reduce=self.policy.min_blocked_reduce,
        )

    def enabled_accounts(self) -> list[AccountConfig]:
        return [a for a in self.accounts if a.enabled]


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {where}: {msg}")
    return "\n".join(lines)


def load_config(path: Path) -> Config:
    """Read and validate ``path``; relative paths inside are resolved against its folder."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(text) > CONFIG_MAX_CHARS:
        raise ConfigError(f"{path}: larger than {CONFIG_MAX_CHARS} characters")
    try:
        # PyYAML's composer recurses: measure depth on its (iterative) event stream first.
        if yaml_depth(text, _UniqueKeyLoader) > CONFIG_MAX_DEPTH:
            raise ConfigError(f"{path}: nested deeper than {CONFIG_MAX_DEPTH} levels")
        raw = _yaml_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    _reject_secrets(raw, path)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(path))) from None
    base = path.parent
    updates: dict[str, Any] = {"state_dir": _resolve(base, cfg.state_dir)}
    if cfg.credentials_file is not None:
        updates["credentials_file"] = _resolve(base, cfg.credentials_file)
    if cfg.venue.scenario is not None:
        scenario = _resolve(base, cfg.venue.scenario)
        if cfg.venue.embedded and not scenario.is_file():
            # The embedded simulator reads it at start-up: say so now, in one line.
            what = "is not a file" if scenario.exists() else "no such file"
            raise ConfigError(f"{path}: venue.scenario: {scenario}: {what}")
        updates["venue"] = cfg.venue.model_copy(update={"scenario": scenario})
    return cfg.model_copy(update=updates)


def _one_line(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p)


_SECRET_KEYS = re.compile(r"(secret|passphrase|api_?key)", re.IGNORECASE)


def _reject_secrets(raw: Any, path: Path, where: str = "") -> None:
    """Credentials in config.yaml would end up in the repo: refuse them outright."""
    if isinstance(raw, dict):
        for k, v in raw.items():
            here = f"{where}.{k}" if where else str(k)
            if isinstance(k, str) and _SECRET_KEYS.search(k) and k != "credentials_file":
                raise ConfigError(
                    f"{path}: {here}: credentials do not belong in the config file; use "
                    "environment variables OKX_<NAME>_API_KEY/_SECRET_KEY/_PASSPHRASE "
                    "or a 0600 credentials_file"
                )
            _reject_secrets(v, path, here)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            _reject_secrets(v, path, f"{where}.{i}")


def load_credentials(
    cfg: Config,
    account: AccountConfig,
    env: Mapping[str, str] | None = None,
    *,
    file_entries: Mapping[str, Credentials] | None = None,
) -> Credentials:
    """Credentials for ``account``: environment first, then the credentials file.

    ``file_entries``: the credentials file already parsed (:func:`read_credentials_file`);
    without it the file is read here, so callers with many accounts pass it (parsing a
    500-entry file once per account took 92 s). Raises ConfigError naming the variables to
    set; never includes any secret value.
    """
    env = os.environ if env is None else env
    prefix = account.env_prefix
    names = (f"{prefix}_API_KEY", f"{prefix}_SECRET_KEY", f"{prefix}_PASSPHRASE")
    values = [env.get(n, "") for n in names]
    if all(values):
        return Credentials(*values)
    if cfg.credentials_file is not None:
        if file_entries is None:
            file_entries = read_credentials_file(cfg.credentials_file)
        entry = file_entries.get(account.name)
        if entry is not None:
            return entry
    missing = [n for n, v in zip(names, values, strict=True) if not v]
    where = f" or an entry in {cfg.credentials_file}" if cfg.credentials_file else ""
    raise ConfigError(f"account {account.name}: no credentials: set {', '.join(missing)}{where}")


def read_credentials_file(path: Path) -> dict[str, Credentials]:
    """Parse the 0600 credentials file once: ``{account: Credentials}``."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"credentials_file {path}: cannot read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"credentials_file {path}: permissions {stat.S_IMODE(mode):o} are too open; "
            "run chmod 600"
        )
    try:
        raw = _yaml_load(path.read_text())
    except yaml.YAMLError as exc:
        # Never quote the file: it holds secrets. The problem and the line only.
        problem = getattr(exc, "problem", None) or "not valid YAML"
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"credentials_file {path}: {problem}{line}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"credentials_file {path}: expected a mapping of account names")
    out: dict[str, Credentials] = {}
    keys = ("api_key", "secret_key", "passphrase")
    for name, entry in raw.items():
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) and entry.get(k) for k in keys
        ):
            raise ConfigError(
                f"credentials_file {path}: {name}: needs non-empty api_key, secret_key, passphrase"
            )
    # One registration (one pattern compiled) for the whole file, not three per account.
    register_secrets(v for entry in raw.values() for v in (entry[k] for k in keys))
    for name, entry in raw.items():
        out[str(name)] = Credentials(entry["api_key"], entry["secret_key"], entry["passphrase"])
    return out


def resolve_credentials(
    cfg: Config, env: Mapping[str, str] | None = None, *, enabled_only: bool = True
) -> dict[str, Credentials]:
    """All enabled accounts' credentials, or one ConfigError naming every missing variable.

    The credentials file is read at most once, and only when some account is not fully set
    in the environment.
    """
    env = os.environ if env is None else env
    accounts = cfg.enabled_accounts() if enabled_only else list(cfg.accounts)
    file_entries: Mapping[str, Credentials] | None = None
    if cfg.credentials_file is not None and any(not _in_env(a, env) for a in accounts):
        file_entries = read_credentials_file(cfg.credentials_file)
    errors, out = [], {}
    for acc in accounts:
        try:
            out[acc.name] = load_credentials(cfg, acc, env, file_entries=file_entries or {})
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise ConfigError("\n".join(errors))
    return out


def _in_env(account: AccountConfig, env: Mapping[str, str]) -> bool:
    p = account.env_prefix
    return all(env.get(f"{p}_{k}") for k in ("API_KEY", "SECRET_KEY", "PASSPHRASE"))
