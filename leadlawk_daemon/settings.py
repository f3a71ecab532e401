"""The daemon's configuration: one validated, immutable tree.

Defaults live in ``config/default.yaml`` and nowhere else (the models below have none), so the
file that documents every key is also the one that sets it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, IPvAnyNetwork, ValidationError

from leadlawk_daemon.logs import redact

__all__ = [
    "ConfigError",
    "Settings",
    "default_config_path",
    "load_settings",
    "masked",
    "parse_dns_server",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """``"30s"``, ``"500ms"``, ``"5m"``, ``"1h"`` or a number of seconds, as float seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration (use 30s, 500ms, 5m or seconds): {value!r}")
        return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"not a duration: {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# Shorter admin tokens are refused (at start and by `config check`): the token guards the whole
# daemon and the console's sign-in form, so it must be out of reach of guessing.
MIN_ADMIN_TOKEN = 24


def _check_admin_token(value: Any) -> Any:
    if isinstance(value, str) and len(value) < MIN_ADMIN_TOKEN:
        raise ValueError(
            f"an admin token must be at least {MIN_ADMIN_TOKEN} characters (set server.admin_token or "
            f"LEADLAWK_ADMIN_TOKEN to a random one, e.g. `openssl rand -hex 32`)"
        )
    return value


class ServerSettings(_Section):
    host: str
    port: int = Field(ge=0, le=65535)
    admin_token: Annotated[str | None, BeforeValidator(_check_admin_token)]
    max_body_bytes: int = Field(ge=1024, le=16 * 1024 * 1024)
    # The HTTP boundary (docs/http-boundary.md).
    allowed_hosts: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]{1,253}$")], ...]
    trusted_proxies: tuple[IPvAnyNetwork, ...]
    header_timeout: PositiveDuration
    body_timeout: PositiveDuration
    max_connections: int = Field(ge=1, le=100_000)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ShutdownSettings(_Section):
    budget: PositiveDuration
    bind_timeout: PositiveDuration


class DatabaseSettings(_Section):
    url: str = Field(pattern=r"^(postgres(ql)?://|sqlite:///)")
    pool_min: int = Field(ge=1, le=100)
    pool_max: int = Field(ge=1, le=100)
    connect_timeout: PositiveDuration
    command_timeout: PositiveDuration
    write_parallelism: int = Field(ge=1, le=16)
    batch_size: int = Field(ge=1, le=100_000)
    flush_interval: PositiveDuration
    max_pending: int = Field(ge=1)


class RedisSettings(_Section):
    url: str | None = Field(pattern=r"^rediss?://")
    prefix: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    consumer_group: str = Field(min_length=1)
    max_deliveries: int = Field(ge=1, le=100)
    claim_idle: PositiveDuration
    reconnect_max_delay: PositiveDuration
    pubsub_dedupe_window: PositiveDuration
    stream_block: PositiveDuration
    stream_batch: int = Field(ge=1, le=1000)
    events_buffer: int = Field(ge=1, le=1_000_000)
    # The shared quotas' own connection (docs/scaling-out.md): a cut Redis costs a call this long.
    quota_timeout: PositiveDuration = 0.5
    fleet_ttl: PositiveDuration


class CircuitBreakerSettings(_Section):
    failure_threshold: int = Field(ge=1, le=1000)
    timeout: PositiveDuration
    reset_timeout: PositiveDuration


class RetrySettings(_Section):
    max_attempts: int = Field(ge=1, le=100)
    base_delay: Duration
    max_delay: Duration
    exponential_base: float = Field(ge=1)
    jitter: bool


class BulkheadSettings(_Section):
    max_concurrent_jobs: int = Field(ge=1, le=1000)
    queue_size: int = Field(ge=1, le=1_000_000)
    timeout: PositiveDuration


class HealthCheckSettings(_Section):
    interval: PositiveDuration
    timeout: PositiveDuration
    failure_threshold: int = Field(ge=1, le=100)
    success_threshold: int = Field(ge=1, le=100)


class ResilienceSettings(_Section):
    circuit_breaker: CircuitBreakerSettings
    retry: RetrySettings
    bulkhead: BulkheadSettings
    health_check: HealthCheckSettings


class BackoffSettings(_Section):
    min: Duration
    max: Duration
    jitter: float = Field(ge=0, le=10)
    reset_after: Duration


class SupervisionSettings(_Section):
    max_restarts: int = Field(ge=0, le=10_000)
    period: PositiveDuration
    backoff: BackoffSettings
    start_timeout: PositiveDuration
    shutdown_timeout: PositiveDuration


class ActorSettings(_Section):
    mailbox_capacity: int | None = Field(default=None, ge=1, le=10_000_000)
    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    handle_timeout: PositiveDuration | None = None


class ActorDefaults(_Section):
    mailbox_capacity: int = Field(ge=1, le=10_000_000)
    concurrency: int = Field(ge=1, le=10_000)
    max_attempts: int = Field(ge=1, le=100)
    handle_timeout: PositiveDuration


class ActorsSettings(_Section):
    defaults: ActorDefaults
    scraper: ActorSettings = ActorSettings()
    enricher: ActorSettings = ActorSettings()
    site: ActorSettings = ActorSettings()
    writer: ActorSettings = ActorSettings()
    jobs: ActorSettings = ActorSettings()

    def for_actor(self, name: str) -> ActorDefaults:
        """An actor's effective settings: its own section (if it has one) over ``defaults``."""
        own = getattr(self, name, None)
        merged = self.defaults.model_dump()
        if isinstance(own, ActorSettings):
            merged |= own.model_dump(exclude_none=True)
        return ActorDefaults.model_validate(merged)


class HealthSettings(_Section):
    loop_lag_interval: PositiveDuration
    loop_lag_max: PositiveDuration
    loop_stall_warning: PositiveDuration  # one callback holding the loop longer is logged, with its stack


class BrowserSettings(_Section):
    executable: str | None
    headless: bool
    pages: int = Field(ge=1, le=64)
    page_recycle_after: int = Field(ge=1)
    browser_recycle_after: int = Field(ge=1)
    memory_limit_mb: int = Field(ge=64)
    launch_timeout: PositiveDuration
    # Chromium's processes run this much nicer than the daemon: rendering Google's pages must not
    # take the CPU from the event loop that renews leases and answers health probes.
    nice: int = Field(default=5, ge=0, le=19)


# A credential written into a committed config is refused: a proxy URL's password must be a
# ``${ENV_NAME}`` reference (expanded when the exit is built, never stored) or come from a
# ``credentials_file`` (docs/egress-pool.md).
_EGRESS_URL = re.compile(r"^(?:direct|(?:https?|socks5)://[^\s/?#]+/?)$")
_LITERAL_PASSWORD = re.compile(r"^[a-z0-9]+://[^:@/]*:(?!\$\{[A-Za-z_][A-Za-z0-9_]*\}@)[^@/]*@")


def _check_egress_url(value: Any) -> Any:
    if isinstance(value, str):
        if not _EGRESS_URL.match(value):
            raise ValueError("an exit is direct or a proxy URL: http://, https:// or socks5://host:port")
        if _LITERAL_PASSWORD.match(value):
            raise ValueError(
                "a proxy password must not be written in the config: use ${ENV_NAME} or credentials_file"
            )
    return value


EgressUrl = Annotated[str, BeforeValidator(_check_egress_url)]


class EgressExitSettings(_Section):
    """One exit of ``maps.egress`` in its long form (a plain string is the URL alone)."""

    url: EgressUrl
    # The label in logs, metrics, /fleet and the console; default: a hash of the URL without credentials.
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    # A file holding ``user:password`` (one line, mode 0600), read when the exit is built.
    credentials_file: str | None = None


class MapsSettings(_Section):
    base_url: str = Field(pattern=r"^https?://")
    language: str = Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    navigations_per_minute: float = Field(gt=0)
    navigation_timeout: PositiveDuration
    scroll_timeout: PositiveDuration
    max_idle_scrolls: int = Field(ge=1, le=100)
    # Area coverage (config/default.yaml says why each default); defaulted here too, so that code
    # building MapsSettings by hand for one search need not know about areas.
    results_cap: int = Field(default=120, ge=1, le=10_000)
    min_cell_m: float = Field(default=200.0, ge=10, le=100_000)
    max_area_km2: float = Field(default=10_000.0, gt=0, le=1_000_000)
    viewport_width: int = Field(default=1280, ge=100, le=10_000)
    viewport_height: int = Field(default=720, ge=100, le=10_000)
    # Google's signed-out limited view (docs/limited-view.md): a signed-in session to
    # collect through (a Playwright storage state, written by `leadlawk maps-session import`), what
    # to do while the view is limited, and how a minimum review count Google hides is judged.
    session_file: str | None = None
    on_limited_view: Literal["continue", "wait"] = "continue"
    min_reviews_when_hidden: Literal["reject", "accept"] = "reject"
    # Google's consent page, known by its forms in any language (docs/consent.md): answered with
    # reject-all (accept-all where the page has none), or with accept-all.
    consent: Literal["reject", "accept"] = "reject"
    # Who shares navigations_per_minute (docs/scaling-out.md): this process, the daemons of this
    # host (one egress IP address), or every daemon on the Redis.
    politeness_scope: Literal["process", "host", "fleet", "egress", "auto"] = "auto"
    # The exits Google Maps is reached through (docs/egress-pool.md): direct, or proxies.
    egress: tuple[EgressUrl | EgressExitSettings, ...] = Field(default=("direct",), min_length=1, max_length=64)
    # How many searches one exit serves at once; a blocked exit's first cool-down and the longest.
    egress_max_in_flight: int = Field(default=2, ge=1, le=64)
    egress_cooldown: PositiveDuration = 30.0
    egress_max_cooldown: PositiveDuration = 900.0

    @property
    def scope(self) -> str:
        """``politeness_scope`` with ``auto`` resolved: host with one exit, egress with more."""
        if self.politeness_scope == "auto":
            return "egress" if len(self.egress) > 1 else "host"
        return self.politeness_scope


class PageSpeedSettings(_Section):
    base_url: str = Field(pattern=r"^https?://")
    api_key: str | None
    queries_per_100s: float = Field(gt=0)
    queries_per_day: int = Field(ge=1)
    quota_reset_tz: str
    request_timeout: PositiveDuration
    expected_latency: PositiveDuration
    max_in_flight: int = Field(ge=0, le=10_000)


class JobsSettings(_Section):
    lease_ttl: PositiveDuration
    heartbeat: PositiveDuration
    renew_timeout: PositiveDuration
    progress_interval: PositiveDuration
    cancel_grace: PositiveDuration
    max_attempts: int = Field(ge=1, le=100)
    max_wait: PositiveDuration


class ResourcesSettings(_Section):
    memory_limit_mb: int | None = Field(ge=16)


class ChaosSettings(_Section):
    enabled: bool


class SitesSettings(_Section):
    enabled: bool
    proxy: str | None = Field(pattern=r"^https?://")
    ca_file: str | None
    user_agent: str = Field(min_length=1, max_length=300)
    timeout: PositiveDuration
    max_pages: int = Field(ge=0, le=10)
    max_bytes: int = Field(ge=16 * 1024, le=64 * 1024 * 1024)
    max_redirects: int = Field(ge=0, le=20)
    per_host: int = Field(ge=1, le=16)
    max_in_flight: int = Field(ge=1, le=10_000)
    ttl: Duration
    cache_size: int = Field(ge=1, le=10_000_000)
    egress_failures: int = Field(ge=2, le=10_000)
    # The egress policy (docs/egress-policy.md): networks exempt from it, and one site's read in all.
    allowed_networks: tuple[IPvAnyNetwork, ...]
    site_budget: PositiveDuration
    parse_budget: PositiveDuration  # CPU per page, in a worker process that is stopped past it
    parse_workers: int = Field(ge=1, le=64)


# Destinations (docs/deliveries.md): where a finished job's digest goes, by name. A secret is never
# in the configuration, only the name of the environment variable that holds it.
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
DESTINATION_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class WebhookDestination(_Section):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", max_length=2000)
    secret_env: str = Field(pattern=_ENV_NAME)  # the HMAC-SHA256 key's variable
    page_size: int | None = Field(default=None, ge=1, le=10_000)  # None: deliveries.page_size


class EmailDestination(_Section):
    type: Literal["email"]
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=_ENV_NAME)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = Field(min_length=1, max_length=50)
    attach: Literal["csv", "xlsx"] = "csv"
    top: int = Field(default=10, ge=0, le=100)  # leads listed in the body; the attachment has all
    ca_file: str | None = None  # a PEM bundle trusted besides the system's (a private CA's)


class FileDestination(_Section):
    type: Literal["file"]
    directory: str = Field(min_length=1)
    format: Literal["csv", "jsonl", "xlsx"] = "csv"


Destination = Annotated[WebhookDestination | EmailDestination | FileDestination, Field(discriminator="type")]


class DeliveriesSettings(_Section):
    page_size: int = Field(ge=1, le=10_000)
    timeout: PositiveDuration
    retry_base: PositiveDuration
    retry_max: PositiveDuration
    sweep_interval: PositiveDuration
    claim_ttl: PositiveDuration
    concurrency: int = Field(ge=1, le=64)


class SchedulesSettings(_Section):
    """The firing loop every daemon runs (docs/schedules.md)."""

    enabled: bool
    poll_interval: PositiveDuration
    grace: PositiveDuration
    batch: int = Field(ge=1, le=10_000)
    parallel: int = Field(ge=1, le=64)
    claim_ttl: PositiveDuration


def parse_dns_server(text: str) -> tuple[str, int]:
    """``"192.0.2.53"``, ``"192.0.2.53:5353"``, ``"::1"`` or ``"[::1]:5353"`` as (address, port).

    An address, never a name: a resolver named by a name would need a resolver first."""
    host, port = text.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"not a DNS server address: {text!r}")
        port = int(rest[1:]) if rest else 53
    elif host.count(":") == 1:
        host, _, number = host.partition(":")
        port = int(number)
    ipaddress.ip_address(host)  # ValueError for a name
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return host, port


def _check_dns_server(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parse_dns_server(value)
        except ValueError:
            raise ValueError(
                f"a DNS server is an IP address with an optional port (192.0.2.53:5353, [::1]:53), not {value!r}"
            ) from None
    return value


class EmailsSettings(_Section):
    """Email verdicts (docs/email-verdicts.md): each site email's domain checked over DNS."""

    enabled: bool
    # The only servers asked (none: the system's /etc/resolv.conf): addresses, never names.
    dns_servers: tuple[Annotated[str, BeforeValidator(_check_dns_server)], ...] = Field(max_length=16)
    timeout: PositiveDuration
    cache_ttl: Duration
    cache_size: int = Field(ge=1, le=10_000_000)
    max_in_flight: int = Field(ge=1, le=10_000)
    dns_failures: int = Field(ge=1, le=10_000)


class Settings(_Section):
    server: ServerSettings
    logging: LoggingSettings
    shutdown: ShutdownSettings
    database: DatabaseSettings
    redis: RedisSettings
    resilience: ResilienceSettings
    supervision: SupervisionSettings
    actors: ActorsSettings
    health: HealthSettings
    browser: BrowserSettings
    maps: MapsSettings
    pagespeed: PageSpeedSettings
    jobs: JobsSettings
    resources: ResourcesSettings
    chaos: ChaosSettings
    sites: SitesSettings
    emails: EmailsSettings
    destinations: dict[Annotated[str, Field(pattern=DESTINATION_NAME)], Destination]
    deliveries: DeliveriesSettings
    schedules: SchedulesSettings


class ConfigError(Exception):
    """Bad configuration: ``problems`` holds one readable line per problem, each naming its key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# Twelve-factor variables and the key each one sets.
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "PORT": ("server", "port"),
    "DATABASE_URL": ("database", "url"),
    "REDIS_URL": ("redis", "url"),
    "PAGESPEED_API_KEY": ("pagespeed", "api_key"),
    "LEADLAWK_ADMIN_TOKEN": ("server", "admin_token"),
    "LEADLAWK_CHROMIUM": ("browser", "executable"),
    "LOG_LEVEL": ("logging", "level"),
}
SECRET_KEYS = {("pagespeed", "api_key"), ("server", "admin_token")}
_PATH_PREFIX = "LEADLAWK__"


def default_config_path() -> Path:
    """``config/default.yaml`` of a source checkout, else the copy packaged into the wheel."""
    checkout = Path(__file__).resolve().parent.parent / "config" / "default.yaml"
    if checkout.is_file():
        return checkout
    return Path(__file__).resolve().parent / "default.yaml"


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{what} {path}: cannot be read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{what} {path}: not valid YAML ({_yaml_problem(exc)})"]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError([f"{what} {path}: the top level must be a mapping of keys, not {type(loaded).__name__}"])
    return loaded


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, never the offending line itself: it may hold a DSN with its password."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return redact(f"{where}{problem}" + (f" ({context})" if context else ""))


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _env_value(raw: str) -> Any:
    # YAML scalars, so that "3", "true", "null" and "[mobile, desktop]" mean what they say.
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        # pydantic appends the validator's name to the location of some errors; drop it.
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        path = _format_loc(loc)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key")
            continue
        if err["type"] == "missing":
            lines.append(f"{path}: required key is missing")
            continue
        value = err.get("input")
        shown = "***" if tuple(str(p) for p in loc) in {tuple(k) for k in SECRET_KEYS} else redact(repr(value))
        lines.append(f"{path}: {redact(message)} (got {shown})")
    return lines


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then ``path`` (or ``$LEADLAWK_CONFIG``), then the environment; validated.

    Raises :class:`ConfigError` naming every problem at once.
    """
    env = os.environ if environ is None else environ
    tree = _read_yaml(default_config_path(), "built-in defaults")
    file_path = path if path is not None else env.get("LEADLAWK_CONFIG") or None
    if file_path is not None:
        tree = _merge(tree, _read_yaml(Path(file_path), "config file"))
    problems: list[str] = []
    for name, raw in sorted(env.items()):
        if not name.startswith(_PATH_PREFIX):
            continue
        parts = tuple(p.lower() for p in name[len(_PATH_PREFIX) :].split("__"))
        if not all(parts):
            problems.append(f"{name}: not a key path (use LEADLAWK__SECTION__KEY)")
            continue
        _set_path(tree, parts, _env_value(raw))
    for name, key in ENV_KEYS.items():
        if name in env and env[name] != "":
            _set_path(tree, key, _env_value(env[name]) if name == "PORT" else env[name])
    try:
        settings = Settings.model_validate(tree)
    except ValidationError as exc:
        problems.extend(_problems(exc))
        raise ConfigError(problems) from None
    problems.extend(_cross_checks(settings))
    problems.extend(_destination_secrets(settings, env))
    if problems:
        raise ConfigError(problems)
    return settings


def _cross_checks(s: Settings) -> list[str]:
    problems = []
    if s.database.pool_min > s.database.pool_max:
        problems.append(
            f"database.pool_min: must not exceed database.pool_max ({s.database.pool_max}) "
            f"(got {s.database.pool_min})"
        )
    if s.resilience.retry.base_delay > s.resilience.retry.max_delay:
        problems.append(
            f"resilience.retry.base_delay: must not exceed resilience.retry.max_delay "
            f"(got {s.resilience.retry.base_delay})"
        )
    if s.supervision.backoff.min > s.supervision.backoff.max:
        problems.append(
            f"supervision.backoff.min: must not exceed supervision.backoff.max (got {s.supervision.backoff.min})"
        )
    # A lease must outlive what keeps it: a renewal due every heartbeat, a store call that may take
    # command_timeout. Otherwise a daemon can still be working on a job whose lease has lapsed and
    # another daemon has taken. (A renewal is cut at min(renew_timeout, lease_ttl / 3): always under.)
    ttl = s.jobs.lease_ttl
    for key, value in (("jobs.heartbeat", s.jobs.heartbeat), ("database.command_timeout", s.database.command_timeout)):
        if value >= ttl:
            problems.append(f"{key}: must be less than jobs.lease_ttl ({ttl:g}s) (got {value:g}s)")
    # A job waiting on an outage holds an actor's handler while it waits; the job must be handed back
    # (jobs.max_wait) before the watchdog would take that wait for a hung handler and fail the lead.
    for actor in ("scraper", "enricher"):
        handle_timeout = s.actors.for_actor(actor).handle_timeout
        if s.jobs.max_wait >= handle_timeout:
            problems.append(
                f"jobs.max_wait: must be less than actors.{actor}.handle_timeout ({handle_timeout:g}s) "
                f"(got {s.jobs.max_wait:g}s)"
            )
    # A site read past its budget is recorded dead; the actor's watchdog must not cut it first (and
    # take a slow site for a hung handler), and one request's timeout must fit in it, or a network
    # where nothing answers would read as slow sites rather than open the egress breaker.
    site_timeout = s.actors.for_actor("site").handle_timeout
    if s.sites.site_budget >= site_timeout:
        problems.append(f"sites.site_budget: must be less than actors.site.handle_timeout ({site_timeout:g}s) "
                        f"(got {s.sites.site_budget:g}s)")
    if s.sites.site_budget <= s.sites.timeout:
        problems.append(f"sites.site_budget: must be more than sites.timeout ({s.sites.timeout:g}s) "
                        f"(got {s.sites.site_budget:g}s)")
    if s.deliveries.retry_base > s.deliveries.retry_max:
        problems.append(
            f"deliveries.retry_base: must not exceed deliveries.retry_max (got {s.deliveries.retry_base:g}s)"
        )
    return problems


def _destination_secrets(s: Settings, env: Mapping[str, str]) -> list[str]:
    """A destination whose secret's variable is unset would fail every delivery: said at start."""
    problems = []
    for name, destination in s.destinations.items():
        for key in ("secret_env", "password_env"):
            variable = getattr(destination, key, None)
            if variable is not None and not env.get(variable):
                problems.append(f"destinations.{name}.{key}: the environment variable {variable} is not set")
    return problems


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data: secrets replaced by ``***``, and every other text
    through the log redactor, so a URL's userinfo (``postgresql://app:***@host/db``,
    ``http://user:***@proxy:3128``) and credential parameters (``?password=***``) are masked in
    whichever setting they are (docs/masking.md)."""
    tree = settings.model_dump(mode="json")
    for path in SECRET_KEYS:
        node = tree
        for part in path[:-1]:
            node = node[part]
        if node.get(path[-1]) is not None:
            node[path[-1]] = "***"
    for destination in tree.get("destinations", {}).values():
        # A webhook URL's path is often its own secret (Slack's, Discord's): only its host is shown.
        if destination.get("type") == "webhook" and "://" in destination.get("url", ""):
            scheme, _, rest = destination["url"].partition("://")
            host, _, path = rest.partition("/")
            destination["url"] = f"{scheme}://{host}/***" if path else destination["url"]
    return {key: _redacted(value) for key, value in tree.items()}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value
