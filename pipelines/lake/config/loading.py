"""Loading ``lakehouse.yaml`` once per environment into a :class:`LakeConfig`.

A bad file fails in one line naming the key path and the value (:func:`_first_error`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import posixpath
import typing
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from pipelines.lake.config.environment import (
    ENVIRONMENTS,
    ConfigError,
    config_path,
    current_environment,
    env,
    lake_home,
    read_config_file,
)
from pipelines.lake.config.file import EnvironmentModel, LakehouseFile, LocationModel, _text
from pipelines.lake.config.models import (
    ComputeConfig,
    LakeConfig,
    LakeLocation,
    LandingConfig,
    MLSettings,
    Policy,
    ReplicationRule,
    SparkEndpoint,
)

# What a pattern means, for the fields that have one (pydantic would quote the regex).
_PATTERN_MEANS = {
    "spark_connect": "is not a Spark Connect URL (sc://…)",
    "databricks_token": "must be a ${VARIABLE} (secrets are never written in lakehouse.yaml)",
    "routing_tag": "is not a Dagster tag key (letters, digits, _ - . and one optional prefix/, "
    "e.g. lakehouse/jurisdiction)",
    "root": "is not a URI (scheme://bucket…)",
}


_SCALAR_ERRORS = ("string_type", "int_type", "float_type", "bool_type")
_SCALAR_TAGS = ("str", "int", "float", "bool")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation holds (itself, or inside a list, dict or union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section holding ``loc``'s last key accepts (by alias where it has one)."""
    cls: type[BaseModel] | None = LakehouseFile
    for part in loc[:-1]:
        if cls is None:
            return []
        fields = {f.alias or n: f for n, f in cls.model_fields.items()}
        if isinstance(part, str) and part in fields:
            cls = _model_in(fields[part].annotation)
    return [] if cls is None else [f.alias or n for n, f in cls.model_fields.items()]


def _first_error(exc: ValidationError, path: str) -> ConfigError:
    """A pydantic error as one line: the file, the key path, what is wrong and the value."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    kind = err["type"]
    # a value of a union (text, number or boolean) names the member it tried last: drop it
    single = kind in _SCALAR_ERRORS and len(loc) > 1 and str(loc[-1]) in _SCALAR_TAGS
    if single:
        loc = loc[:-1]
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    got = err.get("input")
    secret = any(w in str(loc[-1]).lower() for w in ("token", "key", "secret", "password"))
    shown = "" if isinstance(got, dict | list) or got is None or secret else f" {got!r}"
    if single:
        return ConfigError(f"{path}: {where} must be a single value (text, number or true/false)")
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return ConfigError(f"{path}: {where} must be a mapping, not {type(got).__name__}")
    if kind == "list_type":
        return ConfigError(f"{path}: {where} must be a list, not {type(got).__name__}")
    if kind == "extra_forbidden":
        known = ", ".join(_known_keys(loc))
        return ConfigError(f"{path}: {where}: unknown key{'; known: ' + known if known else ''}")
    if kind == "missing":
        return ConfigError(f"{path}: {where}: missing (required)")
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", "")).replace("'", "")
        return ConfigError(f"{path}: {where}{shown} is not one of {expected.replace(' or ', ', ')}")
    if kind == "string_pattern_mismatch" and str(loc[-1]) in _PATTERN_MEANS:
        return ConfigError(f"{path}: {where}{shown} {_PATTERN_MEANS[str(loc[-1])]}")
    message = err["msg"].removeprefix("Value error, ")
    return ConfigError(f"{path}: {where}{shown}: {message}")


def _location(raw: LocationModel) -> LakeLocation:
    landing = {k: v for k, v in raw.landing.model_dump().items() if v is not None}
    return LakeLocation(
        name=raw.name,
        cloud=raw.cloud,
        region=raw.region,
        jurisdiction=raw.jurisdiction,
        root=raw.root,
        landing=LandingConfig(
            format=landing.pop("format"), prefix=landing.pop("prefix"), options=landing
        ),
        raw_storage_options={k: _text(v) for k, v in raw.storage_options.items()},
        adapter=raw.adapter,
        raw_spark_root=raw.spark.root,
        raw_spark_conf={str(k): _text(v) for k, v in raw.spark.conf.items()},
    )


def _compute(
    model: LakehouseFile, env: EnvironmentModel, where: str, known: list[str]
) -> ComputeConfig:
    """The compute rules, checked against the environment's jurisdictions and locations."""
    may = {}
    for worker, allowed in model.compute.may_process.items():
        key = f"{where}: compute.may_process.{worker}"
        items = [allowed] if isinstance(allowed, str) else allowed
        unknown = sorted({worker, *items} - set(known))
        if unknown or not items:
            raise ConfigError(
                f"{key} names unknown jurisdiction(s) {', '.join(unknown) or '(none listed)'}; "
                f"known: {', '.join(known)}"
            )
        if worker not in items:
            raise ConfigError(f"{key} must list {worker} itself (a worker serves its own data)")
        may[worker] = tuple(dict.fromkeys(items))
    names = [loc.name for loc in env.locations]
    endpoints = {}
    for name, raw in env.compute.spark_endpoints.items():
        if name not in names:
            raise ConfigError(
                f"{where}: compute.spark_endpoints: unknown location {name!r}; "
                f"known: {', '.join(names)}"
            )
        endpoints[name] = SparkEndpoint(name, **raw.model_dump(exclude_none=True))
    return ComputeConfig(
        may_process=may,
        routing_tag=model.compute.routing_tag,
        pools=env.compute.pools,
        spark_endpoints=endpoints,
    )


def _check_names(raw: list[LocationModel], where: str) -> None:
    """Refuse two locations of one environment with the same name, naming both."""
    seen: dict[str, int] = {}
    for i, loc in enumerate(raw):
        if loc.name in seen:
            raise ConfigError(
                f"{where}.locations[{i}].name {loc.name!r} is the name of "
                f"locations[{seen[loc.name]}] too; each location needs its own name"
            )
        seen[loc.name] = i


def _root_key(root: str) -> str:
    """A root as text to compare: no ``file://``, no trailing or doubled ``/``, ``..`` folded.

    Placeholders stay unresolved (the file is checked without the deployment's variables): the
    same ``${NAME}`` is the same root wherever it points.
    """
    text = root.strip()
    if text.startswith("file://"):
        text = text[len("file://") :]
    scheme, sep, rest = text.partition("://")
    if not sep:
        return posixpath.normpath(text or ".")
    return f"{scheme.lower()}://{posixpath.normpath('/' + rest).lstrip('/')}".rstrip("/")


def _inside(inner: str, outer: str) -> bool:
    """True when root ``inner`` is ``outer`` or a folder under it (both :func:`_root_key`)."""
    if inner == outer:
        return True
    if outer == ".":  # the home folder itself: every relative root under it
        return "://" not in inner and not inner.startswith(("/", "../")) and inner != ".."
    return inner.startswith(outer.rstrip("/") + "/")


def _check_roots(raw: list[LocationModel], where: str) -> None:
    """Refuse two locations whose roots are one folder, or one inside the other.

    Each location's tables live at ``<root>/tables/<table>``: two locations on one root (of two
    jurisdictions, say) would write each other's tables. A relative root is compared with an
    absolute one as it resolves, against ``LAKEHOUSE_HOME``.
    """
    keys = [_root_key(loc.root) for loc in raw]
    local = [k for k in keys if "://" not in k]
    if any(k.startswith("/") for k in local) and any(not k.startswith("/") for k in local):
        home = str(lake_home())
        keys = [posixpath.normpath(posixpath.join(home, k)) if "://" not in k else k for k in keys]
    for i, inner in enumerate(keys):
        for j, outer in enumerate(keys):
            if i == j or not _inside(inner, outer) or (inner == outer and j > i):
                continue
            how = "is the root of" if inner == outer else "is inside the root of"
            raise ConfigError(
                f"{where}.locations[{i}].root {raw[i].root!r} {how} locations[{j}] "
                f"({raw[j].name!r}: {raw[j].root!r}); each location needs storage of its own, "
                "or their tables would share it"
            )


def _check_replicated_tables(model: LakehouseFile, path: str) -> None:
    """Refuse a ``replication:`` rule naming a table the registry does not have."""
    from pipelines.lake.tables import TABLES  # pyarrow: only when a file is loaded

    for i, rule in enumerate(model.replication):
        if rule.table not in TABLES:
            raise ConfigError(
                f"{path}: replication[{i}].table {rule.table!r} is not a table of the product; "
                f"known: {', '.join(TABLES)}"
            )


@functools.cache
def _load(path: str, env: str, start_override: str | None) -> LakeConfig:
    data = read_config_file(path)
    envs = data.get("environments")
    if isinstance(envs, dict) and env not in envs:
        raise ConfigError(f"{path} has no environment {env!r}; it has {', '.join(envs) or 'none'}")
    try:
        model = LakehouseFile.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, path) from None
    raw_env = model.environments[env]
    where = f"{path}: environments.{env}"
    _check_names(raw_env.locations, where)
    _check_roots(raw_env.locations, where)
    _check_replicated_tables(model, path)
    locations = {raw.name: _location(raw) for raw in raw_env.locations}
    start = model.start_date
    if start_override:
        try:
            start = dt.date.fromisoformat(start_override)
        except ValueError:
            raise ConfigError(
                f"LAKEHOUSE_START_DATE={start_override!r} is not a date (YYYY-MM-DD)"
            ) from None
    cfg = LakeConfig(
        environment=env,
        locations=locations,
        ml_home=raw_env.ml_home,
        regions={k: r.model_dump(exclude_none=True) for k, r in model.regions.items()},
        policy=Policy(
            pii_columns=tuple(model.policy.pii_columns),
            allowed_routes={k: tuple(v) for k, v in model.policy.allowed_routes.items()},
        ),
        egress_usd_per_gb=model.egress_usd_per_gb,
        storage_usd_per_gb_month=model.storage_usd_per_gb_month,
        replication=tuple(
            ReplicationRule(
                r.table, (r.sources,) if isinstance(r.sources, str) else tuple(r.sources), r.to
            )
            for r in model.replication
        ),
        start_date=start,
        ml=model.ml,
        spark_backend=raw_env.spark.backend,
        maintenance=model.maintenance,
        privacy=model.privacy,
        quality=model.quality,
    )
    try:
        cfg.location(cfg.ml_home)
    except ConfigError as exc:
        raise ConfigError(f"{where}.ml_home: {exc}") from None
    cfg.replicas()  # every location a rule names must exist
    for region in cfg.region_codes:
        cfg.currency_of(region)
    return dataclasses.replace(cfg, compute=_compute(model, raw_env, path, cfg.jurisdictions))


def load_config(environment: str | None = None) -> LakeConfig:
    """Read ``lakehouse.yaml`` for an environment (default: ``LAKEHOUSE_ENV``).

    Loaded once per file, environment and override (``LAKEHOUSE_START_DATE``): every variable
    that changes the result is part of the cache's key.
    """
    name = environment or current_environment()
    if name not in ENVIRONMENTS:
        raise ConfigError(f"environment {name!r} is not one of {', '.join(ENVIRONMENTS)}")
    return _load(str(config_path()), name, env("LAKEHOUSE_START_DATE") or None)


def load_ml_settings() -> MLSettings:
    """The ``ml:`` section of the configuration in use (loaded once, with the rest)."""
    return load_config().ml
