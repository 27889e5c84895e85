"""The sovereignty policy applied to a sync route, before any byte is copied.

A URI belongs to the configured lake location whose root holds it (in the current
environment; ``s3a://`` and ``s3://``, ``az://`` and ``abfss://`` name the same store, local
folders are compared with their symbolic links resolved).

A table is personal data when any of these holds (see :func:`personal_data_reasons`):

- the table registry (:mod:`pipelines.lake.tables`) marks a table ``personal_data`` and this
  table's name, the source URI's last segment or the name in its Delta ``metaData`` is that
  table's name;
- its columns include every column of such a registered table (its layout, wherever it lies);
- a field at any depth (struct fields, array elements, map keys and values) is named like one
  of ``policy.pii_columns``, names compared after :func:`normalize_name` (Spark matches column
  names case-insensitively; ``Customer_ID``, `` email `` and ``customerId`` all match);
- a field's Delta metadata tags it: a key ``pii`` / ``personal_data`` with a true value, or a
  value (a comment, a tag list) that says "PII" or "personal data";
- its content: the sync scanned a sample of the data files it is about to copy with the
  content detectors (:mod:`pipelines.privacy.detect`) and a detector matched a value of a
  column (``contact`` holding e-mail addresses), a nested field or a field kept in
  ``_rescued_data``. The reason names the column, the detector and the count, never a value.

The sync hands over every schema in effect at a version it copies (the checkpoint it seeds
from, the schema before its first commit, every ``metaData`` among the commits), so a column
added and dropped again between two syncs is still seen.

Personal data may only be copied between two configured locations of the same jurisdiction.
PII-free tables may go to the jurisdictions ``policy.allowed_routes`` lists for the source's.
``--unchecked-route`` (a URI under no location) only relaxes this for PII-free tables or a
source that is itself under no location: personal data of a configured location never goes to
an unconfigured place.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pipelines.lake.config import BUILTIN_DETECTOR_NAMES, ConfigError, LakeConfig, LakeLocation
from pipelines.lake.storage import UriError, parse_uri
from pipelines.lake.tables import TABLES, holds_personal_data
from pipelines.privacy.detect import Finding
from pipelines.sovereignty.compute import check_personal
from pipelines.sovereignty.errors import ComputeSovereigntyError as ComputeSovereigntyError
from pipelines.sovereignty.errors import PolicyError as PolicyError

# Metadata keys that tag a field as personal data when their value is true.
_TAG_KEYS = {"pii", "personaldata", "ispii", "containspii", "personalinformation"}
_TRUE = {"true", "yes", "y", "1"}
# Words in a metadata value (comment, tags, classification) that say "personal data".
_PII_WORDS = re.compile(r"(?<![a-z0-9])pii(?![a-z0-9])|personal[\s_\-]*(data|information)")
MAX_REASONS = 5


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


@dataclass(frozen=True)
class TableEvidence:
    """What the sync knows of a table before copying it.

    ``names``: names the table goes by (``--table``, the source URI's last segment, the
    ``metaData.name`` of its log). ``schemas``: ``(version, schemaString)`` of every Delta
    schema in effect at a version the sync copies.
    """

    names: tuple[str, ...] = ()
    schemas: tuple[tuple[int, str], ...] = ()
    # What the content detectors found in a sample of the data files the sync copies.
    content: tuple[Finding, ...] = ()


def normalize_name(name: str) -> str:
    """A column or table name as the policy compares it.

    Unicode NFKC, case folded, and only letters and digits kept: Spark resolves columns
    case-insensitively, and a space, underscore, hyphen or invisible character does not make
    ``e-mail`` or `` Customer_ID `` less personal.
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def location_of(cfg: LakeConfig, uri: str) -> LakeLocation | None:
    """The configured location whose root holds ``uri`` (longest root wins), or None.

    Raises :class:`~pipelines.lake.storage.UriError` when ``uri`` is malformed.
    """
    target = parse_uri(uri, "URI")
    best: tuple[int, LakeLocation] | None = None
    for loc in cfg.locations.values():
        try:
            root = parse_uri(loc.root_uri(), f"location {loc.name!r} root")
        except (ConfigError, UriError):
            continue  # a location whose placeholders are unset cannot hold this URI
        if target.within(root) and (best is None or len(root.path) > best[0]):
            best = (len(root.path), loc)
    return best[1] if best else None


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
            "(an unchecked route copies anyway, at your own responsibility)"
        )
    return route


def _fields(schema: Any) -> Iterator[tuple[str, str, Any]]:
    """``(path, name, metadata)`` of every field of a Delta schema, nested ones included.

    Walks every object of the schema JSON, not only the documented places, so a field
    cannot hide where a reader would still find it; iterative, so depth is no limit.
    """
    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, list):
            stack.extend((item, prefix) for item in node if isinstance(item, dict | list))
            continue
        if not isinstance(node, dict):
            continue
        name = node.get("name")
        if isinstance(name, str):
            prefix = f"{prefix}.{name}" if prefix else name
            yield prefix, name, node.get("metadata")
        for key, value in node.items():
            if key != "metadata" and isinstance(value, dict | list):
                stack.append((value, prefix))


def _tagged(metadata: Any) -> bool:
    """True when a field's Delta metadata marks it as personal data."""
    if not isinstance(metadata, dict):
        return False
    for key, value in metadata.items():
        key_text = str(key)
        if key_text.startswith("delta."):
            continue  # engine-internal (column mapping, generation expressions, identity)
        if normalize_name(key_text) in _TAG_KEYS and str(value).strip().lower() in _TRUE:
            return True
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and _PII_WORDS.search(v.casefold()) for v in values):
            return True
    return False


def _registered_names(names: Iterable[str]) -> list[str]:
    """Registered personal-data tables any of ``names`` designates."""
    wanted = {normalize_name(n) for n in names if n}
    return [
        spec.name
        for spec in TABLES.values()
        if normalize_name(spec.name) in wanted and holds_personal_data(spec.name)
    ]


def _schema_reasons(version: int, schema_string: str, pii: dict[str, str]) -> list[str]:
    try:
        schema = json.loads(schema_string)
    except (ValueError, RecursionError):
        # Unreadable means unknown, and unknown may be personal data.
        return [f"the schema at version {version} cannot be read"]
    reasons = []
    for path, name, metadata in _fields(schema):
        hits = sorted({pii[n] for part in name.split(".") if (n := normalize_name(part)) in pii})
        if hits:
            shown = f"column {path!r}" if path == hits[0] else f"column {path!r} (as {hits[0]})"
            reasons.append(f"{shown} at version {version}")
        if _tagged(metadata):
            reasons.append(f"column {path!r} tagged personal data in its metadata")
    top = {
        normalize_name(f["name"])
        for f in (schema.get("fields") or [] if isinstance(schema, dict) else [])
        if isinstance(f, dict) and isinstance(f.get("name"), str)
    }
    for spec in TABLES.values():
        if spec.personal_data and top >= {normalize_name(c) for c in spec.columns}:
            reasons.append(
                f"the layout of registered personal-data table {spec.name!r} at version {version}"
            )
    return reasons


def personal_data_reasons(cfg: LakeConfig, evidence: TableEvidence) -> list[str]:
    """Why the table holds personal data (empty when it does not, as far as the policy sees)."""
    reasons = [
        f"the table registry marks {name!r} as personal data"
        for name in _registered_names(evidence.names)
    ]
    pii = {normalize_name(c): c for c in cfg.policy.pii_columns if normalize_name(c)}
    for version, schema_string in evidence.schemas:
        reasons.extend(_schema_reasons(version, schema_string, pii))
    reasons.extend(f.describe() for f in evidence.content)
    return list(dict.fromkeys(reasons))


def crosses_border(route: Route) -> bool:
    """True when the route leaves its source's jurisdiction (or goes to no location).

    Only there does a table's content change the verdict: personal data may stay in its
    jurisdiction, so a sync scans content only on the routes this says.
    """
    if route.source is None:
        return False
    return route.target is None or route.target.jurisdiction != route.source.jurisdiction


def _refusal(table: str, route: Route, why: str, reasons: list[str], rule: str) -> PolicyError:
    shown = "; ".join(reasons[:MAX_REASONS])
    more = f"; and {len(reasons) - MAX_REASONS} more" if len(reasons) > MAX_REASONS else ""
    return PolicyError(
        f"sync of table {table!r} refused: route {route.describe()} {why}, but the table holds "
        f"personal data ({shown}{more}); rule: {rule}"
    )


def check_route(cfg: LakeConfig, table: str, route: Route, evidence: TableEvidence) -> None:
    """Raise :class:`PolicyError` if the policy forbids copying ``table`` along ``route``.

    Called twice by the sync: with the table's names alone before any store is opened,
    then with every schema the copied versions use, before any byte is written.
    """
    if route.source is None:
        return  # the source lies under no location: no jurisdiction to protect
    src = route.source.jurisdiction
    pii = personal_data_reasons(cfg, evidence)
    if route.target is None:
        if pii:
            raise _refusal(
                table,
                route,
                f"leaves jurisdiction {src} for a place under no lake location",
                pii,
                "personal data never leaves its jurisdiction; an unchecked route only allows "
                "PII-free tables (or an unconfigured source) to go to an unconfigured place",
            )
        return
    dst = route.target.jurisdiction
    if pii and src != dst:
        by = "policy.pii_columns and the table registry"
        if evidence.content:
            by = "policy.pii_columns, the table registry and the content detectors (privacy:)"
        raise _refusal(
            table,
            route,
            f"leaves jurisdiction {src}",
            pii,
            f"{by} - personal data never leaves its jurisdiction",
        )
    allowed = cfg.policy.allowed_routes.get(src, (src,))
    if dst not in allowed:
        raise PolicyError(
            f"sync of table {table!r} refused: route {route.describe()} is not allowed; "
            f"rule: policy.allowed_routes.{src} = [{', '.join(allowed)}] does not list {dst}"
        )
    if pii:
        # the copy passes through this process: it must be one that may process the data
        check_personal(
            cfg,
            "sync",
            route.source,
            pii[:MAX_REASONS],
            subject=f"sync of table {table!r} (route {route.describe()})",
        )


def storage_rules(cfg: LakeConfig) -> dict[str, Any]:
    """The effective storage rules as JSON (``lakehouse policy``)."""
    return {
        "pii_columns": list(cfg.policy.pii_columns),
        "personal_data_tables": [t.name for t in TABLES.values() if t.personal_data],
        "allowed_routes": {k: list(v) for k, v in cfg.policy.allowed_routes.items()},
        "locations": {loc.name: loc.jurisdiction for loc in cfg.locations.values()},
        "content_detectors": [*BUILTIN_DETECTOR_NAMES, *(p.name for p in cfg.privacy.patterns)],
        "content_sample": {
            "files": cfg.privacy.sample_files,
            "rows_per_file": cfg.privacy.sample_rows_per_file,
            "when": "a route out of the jurisdiction, for a table not already personal data "
            "by name or schema",
        },
        "rule": "personal data never leaves its jurisdiction; PII-free data goes where "
        "policy.allowed_routes of its source's jurisdiction lists",
    }


def egress_price(cfg: LakeConfig, route: Route) -> float:
    """Estimated USD per GB along the route (0 when an end is unconfigured)."""
    if route.source is None or route.target is None:
        return 0.0
    return cfg.egress_price(route.source, route.target)
