"""A model's lineage beyond its features: the gold, silver and bronze versions behind them.

The features version a model trains on is recorded by the training itself; the tables the
transforms read to build it are named in their commits (:mod:`pipelines.lake.delta.lineage`).
Followed back, they pin the model to the personal tables' versions that fed it, so an erasure
that costs one of those versions marks the model as trained on erased data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipelines.lake import delta
from pipelines.lake.config import LakeConfig, LakeLocation
from pipelines.lake.storage.uris import UriError, parse_uri
from pipelines.lake.tables import BRONZE, LEDGER, QUARANTINE, TABLES
from pipelines.ml.tracking import Lineage

# tables the ingest writes from landing objects: lineage records their version, never opens them
_SOURCES = frozenset({BRONZE.name, QUARANTINE.name, LEDGER.name})


def _same(a: str, b: str) -> bool:
    """One table: ``s3a://`` (Spark's) and ``s3://`` (delta-rs's), ``abfss://`` and ``az://``."""
    try:
        x, y = parse_uri(a, "a lineage input"), parse_uri(b, "a table")
    except UriError:
        return a.removeprefix("file://").rstrip("/") == b.removeprefix("file://").rstrip("/")
    return x.within(y) and y.within(x)


def _label(cfg: LakeConfig, uri: str) -> tuple[str, LakeLocation | None]:
    """``<table>.<location>`` (``<table>.replica.<source>`` for a replica) and its location."""
    for loc in cfg.locations.values():
        for name in TABLES:
            if _same(uri, loc.table_uri(name)):
                return f"{name}.{loc.name}", loc
            for source in cfg.locations:
                if source != loc.name and _same(uri, loc.replica_uri(name, source)):
                    return f"{name}.replica.{source}", loc
    return uri.rstrip("/").rsplit("/", 1)[-1], None


def upstream_lineage(
    cfg: LakeConfig,
    uri: str,
    version: int,
    options_of: Callable[[LakeLocation], Mapping[str, str]],
) -> list[Lineage]:
    """The tables behind ``uri@version`` as lineage entries (rows unknown: 0), by label."""

    def options_for(u: str) -> Mapping[str, str] | None:
        # a table in no configured location is not opened (no store options, no address),
        # nor one the ingest writes: its commits name no input
        label, loc = _label(cfg, u)
        if loc is None or label.split(".", 1)[0] in _SOURCES:
            return None
        return options_of(loc)

    out = []
    for u, v in sorted(delta.upstream_versions(uri, version, options_for).items()):
        out.append(Lineage(_label(cfg, u)[0], u, v, 0))
    return out
