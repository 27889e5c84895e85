"""The sovereignty policy applied to a sync route, before any byte is copied.

A URI belongs to the configured lake location whose root it lies under (in the current
environment). A table is personal data when any column of its Delta schema is listed in
``policy.pii_columns``; personal data may only be copied within its jurisdiction. PII-free
tables may go to the jurisdictions ``policy.allowed_routes`` lists for the source's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.config import ConfigError, LakeConfig, LakeLocation


class PolicyError(RuntimeError):
    """The sovereignty policy forbids a route; the message names table, route and rule."""


@dataclass(frozen=True)
class Route:
    """Where a sync goes: the locations of source and target (None when unchecked)."""

    source_uri: str
    target_uri: str
    source: LakeLocation | None
    target: LakeLocation | None

    @property
    def checked(self) -> bool:
        """True when both ends are configured locations, so the policy applies."""
        return self.source is not None and self.target is not None

    def describe(self) -> str:
        """``aws-us (US) -> azure-eu (EU)``, or the raw URIs for an unchecked end."""

        def end(loc: LakeLocation | None, uri: str) -> str:
            return f"{loc.name} ({loc.jurisdiction})" if loc else f"{uri} (unconfigured)"

        return f"{end(self.source, self.source_uri)} -> {end(self.target, self.target_uri)}"


def _normalize(uri: str) -> str:
    uri = uri.removeprefix("file://")
    if "://" not in uri:
        return str(Path(uri).resolve())
    return uri.rstrip("/")


def location_of(cfg: LakeConfig, uri: str) -> LakeLocation | None:
    """The configured location whose root holds ``uri`` (longest root wins), or None."""
    target = _normalize(uri)
    best: LakeLocation | None = None
    for loc in cfg.locations.values():
        try:
            root = _normalize(loc.root_uri())
        except ConfigError:
            continue  # a location whose placeholders are unset cannot hold this URI
        if (target == root or target.startswith(root + "/")) and (
            best is None or len(root) > len(_normalize(best.root_uri()))
        ):
            best = loc
    return best


def resolve_route(
    cfg: LakeConfig, source_uri: str, target_uri: str, *, allow_unchecked: bool = False
) -> Route:
    """The route between two URIs; an unconfigured URI is an error unless allowed."""
    route = Route(
        source_uri, target_uri, location_of(cfg, source_uri), location_of(cfg, target_uri)
    )
    if not route.checked and not allow_unchecked:
        missing = [
            uri
            for uri, loc in ((source_uri, route.source), (target_uri, route.target))
            if loc is None
        ]
        roots = ", ".join(f"{n}={loc.root}" for n, loc in cfg.locations.items())
        raise ConfigError(
            f"{' and '.join(missing)} lie(s) under no lake location of environment "
            f"{cfg.environment!r} ({roots}); the sovereignty policy cannot be checked "
            "(pass --unchecked-route to copy anyway, at your own responsibility)"
        )
    return route


def check_route(cfg: LakeConfig, table: str, route: Route, columns: set[str]) -> None:
    """Raise :class:`PolicyError` if the policy forbids copying ``table`` along ``route``."""
    if route.source is None or route.target is None:
        return
    src, dst = route.source.jurisdiction, route.target.jurisdiction
    pii = sorted(columns & set(cfg.policy.pii_columns))
    if pii and src != dst:
        raise PolicyError(
            f"sync of table {table!r} refused: route {route.describe()} leaves jurisdiction "
            f"{src}, but the table holds personal data (columns {', '.join(pii)}); rule: "
            "policy.pii_columns - personal data never leaves its jurisdiction"
        )
    allowed = cfg.policy.allowed_routes.get(src, (src,))
    if dst not in allowed:
        raise PolicyError(
            f"sync of table {table!r} refused: route {route.describe()} is not allowed; "
            f"rule: policy.allowed_routes.{src} = [{', '.join(allowed)}] does not list {dst}"
        )


def egress_price(cfg: LakeConfig, route: Route) -> float:
    """Estimated USD per GB along the route (0 when an end is unconfigured)."""
    if route.source is None or route.target is None:
        return 0.0
    return cfg.egress_price(route.source, route.target)
