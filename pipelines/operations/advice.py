"""What an operator should do, from what the health view measures; and per-region freshness.

Each recommendation, and each anomaly (:func:`anomaly_command`), names the command that shows
more or acts on it. Free of Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.lake.config import LakeConfig
from pipelines.operations.anomaly import Anomaly, fmt
from pipelines.operations.health import (
    DAYS_PER_MONTH,
    EGRESS_DOMINANT_SHARE,
    MIN_SMALL_FILES,
    SMALL_FILE_BYTES,
    Stored,
)

# Why reads are not measured: nothing this product runs records them per partition.
READS_NOT_MEASURED = (
    "not measured: Delta logs and Dagster record writes, not reads, and the object stores "
    "log reads only when access logging is on (S3 server access logs or CloudTrail data "
    "events, Azure Storage read logs, GCS Data Access audit logs); with those logs collected, "
    "partitions never read could be listed here"
)


@dataclass(frozen=True)
class Recommendation:
    """One thing to do, why, and the command that does it."""

    kind: str
    target: str
    reason: str
    command: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def compaction(stored: Sequence[Stored]) -> list[Recommendation]:
    """Tables (per location) with partitions of many small files.

    Replicas are left out: compacting one would make it diverge from its source; compacting
    the source compacts the replica at the next sync.
    """
    out: list[Recommendation] = []
    for s in stored:
        if s.label != s.table:
            continue
        crowded = [p for p in s.parts.values() if p.small_files >= MIN_SMALL_FILES]
        if not crowded:
            continue
        files = sum(p.small_files for p in crowded)
        out.append(
            Recommendation(
                "compaction",
                f"{s.table} in {s.location.name}",
                f"{len(crowded)} partitions hold {files} files under "
                f"{SMALL_FILE_BYTES // 1024**2} MiB (at least {MIN_SMALL_FILES} each)",
                f"lakehouse maintain --table {s.table} --location {s.location.name}",
            )
        )
    return out


def _month(total: float, days: int) -> float:
    return total * DAYS_PER_MONTH / max(days, 1)


def egress(cfg: LakeConfig, rows: Iterable[Mapping[str, Any]]) -> list[Recommendation]:
    """Routes whose egress is most of their region's estimated cost (storage plus egress).

    Both per day of the rows, scaled to a month: a month of the region's days costs their
    egress and their storage for a month. Averages, so the verdict does not depend on how many
    days the caller read (a run reads the days it judges, not the history: #28).
    """
    by_region: dict[str, dict[str, float]] = {}
    days: dict[str, set[dt.date]] = {}
    for r in rows:
        agg = by_region.setdefault(str(r["region"]), {"egress": 0.0, "storage": 0.0})
        agg["egress"] += float(r["egress_usd"] or 0.0)
        agg["storage"] += float(r["storage_usd_month"] or 0.0)
        days.setdefault(str(r["region"]), set()).add(r["date"])
    out: list[Recommendation] = []
    for rep in cfg.replicas():
        cost = by_region.get(rep.source.region)
        if not cost or cost["egress"] <= 0:
            continue
        egress_month = _month(cost["egress"], len(days[rep.source.region]))
        storage_month = _month(cost["storage"], len(days[rep.source.region]))
        share = egress_month / (egress_month + storage_month)
        if share <= EGRESS_DOMINANT_SHARE:
            continue
        out.append(
            Recommendation(
                "egress",
                f"{rep.source.name}->{rep.target.name} ({rep.table})",
                f"about ${egress_month:.4f} a month of egress, {share:.0%} of the region's "
                f"estimated storage and egress cost; replicate fewer tables or days "
                f"(lakehouse.yaml replication:) or move the ML home (ml_home:)",
                f"lakehouse sync --from {rep.source_uri} --to {rep.target_uri} --dry-run",
            )
        )
    return out


def anomaly_command(cfg: LakeConfig, found: Anomaly) -> str:
    """The command that shows more about an anomaly, or acts on it."""
    loc = cfg.location_for_region(found.region)
    if found.metric == "quarantine_rate":
        return f"lakehouse quarantine --location {loc.name} --date {found.date}"
    if found.metric == "ingested":  # late or missing objects: ingest the day again (idempotent)
        return f"lakehouse ingest --location {loc.name} --date {found.date}"
    if found.metric == "replica_lag_hours":
        rep = next((r for r in cfg.replicas() if r.source.name == loc.name), None)
        if rep is not None:
            return f"lakehouse sync --from {rep.source_uri} --to {rep.target_uri} --dry-run"
    # compute seconds (or a lag without a replica): the day's figures asset by asset
    return f"lakehouse status --wide --date {found.date}"


def spikes(
    cfg: LakeConfig, found: Iterable[Anomaly], rows: Iterable[Mapping[str, Any]]
) -> list[Recommendation]:
    """A quarantine spike: look at that day's reasons and objects, then fix the producer."""
    reasons = {(str(r["region"]), r["date"]): r.get("top_reasons") or {} for r in rows}
    out: list[Recommendation] = []
    for a in found:
        if a.metric != "quarantine_rate":
            continue
        top = reasons.get((a.region, a.date)) or {}
        why = ", ".join(f"{k} {v}" for k, v in top.items()) or "reasons not kept"
        out.append(
            Recommendation(
                "quarantine_spike",
                f"{cfg.location_for_region(a.region).name} on {a.date}",
                f"{fmt(a.metric, a.value)} of landed records quarantined, usually "
                f"{fmt(a.metric, a.median)} ({why}); find the producer in the day's sample "
                "objects and fix it",
                anomaly_command(cfg, a),
            )
        )
    return out


def recommend(
    cfg: LakeConfig,
    stored: Sequence[Stored],
    rows: Iterable[Mapping[str, Any]],
    found: Sequence[Anomaly] = (),
) -> list[Recommendation]:
    """Every recommendation the measurements support, most actionable first."""
    rows = list(rows)
    return [*spikes(cfg, found, rows), *compaction(stored), *egress(cfg, rows)]


def render(recs: Sequence[Recommendation], markdown: bool = False) -> str:
    """Recommendations as a list: what, why, and the command that acts on it."""
    if not recs:
        return "No recommendation."
    if markdown:
        return "\n".join(f"- **{r.kind}** {r.target}: {r.reason}  \n  `{r.command}`" for r in recs)
    return "\n".join(f"[{r.kind}] {r.target}: {r.reason}\n    -> {r.command}" for r in recs)


@dataclass(frozen=True)
class Freshness:
    """Whether one region's latest partition is in by its deadline."""

    region: str
    latest: dt.date | None
    expected: dt.date
    passed: bool

    def describe(self) -> str:
        """One line: the region, its newest partition and the one expected by now."""
        have = self.latest.isoformat() if self.latest else "none"
        if self.passed:
            return f"{self.region}: latest partition {have}, expected {self.expected}: fresh"
        late = (self.expected - self.latest).days if self.latest else None
        by = f"{late} day(s) late" if late is not None else "never ingested"
        return f"{self.region}: latest partition {have}, expected {self.expected}: {by}"


def expected_date(now: dt.datetime, deadline: dt.timedelta) -> dt.date:
    """The newest daily partition that must be in by ``now``: a day closes, then ``deadline``."""
    return (now - deadline - dt.timedelta(days=1)).date()


def region_freshness(
    latest: Mapping[str, dt.date | None], regions: Iterable[str], expected: dt.date
) -> list[Freshness]:
    """A verdict per region: its own newest partition against the expected one."""
    return [
        Freshness(r, latest.get(r), expected, (latest.get(r) or dt.date.min) >= expected)
        for r in regions
    ]


def latest_by_region(keys: Iterable[tuple[str, dt.date]]) -> dict[str, dt.date]:
    """The newest date of each region among (region, date) partitions."""
    out: dict[str, dt.date] = {}
    for region, day in keys:
        if day > out.get(region, dt.date.min):
            out[region] = day
    return out
