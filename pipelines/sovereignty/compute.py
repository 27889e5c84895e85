"""Sovereignty of compute: personal data is processed only on workers of its jurisdiction.

The sync keeps personal data inside its jurisdiction at rest (:mod:`pipelines.sovereignty.policy`);
this module does the same for processing. A worker (the process that runs a step: a run worker, a
code server, the ``lakehouse`` command) declares where it runs in
``LAKEHOUSE_COMPUTE_JURISDICTION``: one jurisdiction, or a comma list. A step that reads or
writes a table the registry marks as personal data (:mod:`pipelines.lake.tables`) runs only if one
of the worker's jurisdictions may process the personal data of the data's jurisdiction
(``compute.may_process`` in lakehouse.yaml; by default a jurisdiction processes only its own).
A PII-free step runs where ``policy.allowed_routes`` lets its data go.

Unset, the variable means every jurisdiction in ``local`` and ``emulated`` (a laptop, a test);
the caller says so visibly (:attr:`Worker.notice`). In ``prod`` it is an error: a deployment
that forgot to declare its workers' jurisdiction must not process anything.

Every check happens before the step reads a byte: :func:`check_compute` needs only the
configuration, the table names and the variable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.lake.config import (
    PER_JURISDICTION,
    ConfigError,
    LakeConfig,
    LakeLocation,
)
from pipelines.lake.config.environment import env
from pipelines.lake.tables import TABLES, holds_personal_data
from pipelines.sovereignty.errors import ComputeSovereigntyError

__all__ = [
    "ANY",
    "COMPUTE_ENV",
    "SHARED",
    "ComputeGrant",
    "ComputeSovereigntyError",
    "Worker",
    "check_compute",
    "check_locations",
    "check_personal",
    "compute_rules",
    "personal_tables",
    "routing_value",
    "worker_jurisdictions",
]

COMPUTE_ENV = "LAKEHOUSE_COMPUTE_JURISDICTION"
# Values of the routing tag besides a jurisdiction: a run that reads no personal data, and a
# run of a code location that serves every jurisdiction (its steps check each partition).
ANY = "any"
SHARED = "shared"
# Environments where an unset variable means "every jurisdiction" (a laptop, the emulators).
UNDECLARED_OK = ("local", "emulated")
RULE = "personal data is processed only inside its jurisdiction"


@dataclass(frozen=True)
class Worker:
    """What the running process declares about where it runs.

    ``declared``: the jurisdictions named in ``LAKEHOUSE_COMPUTE_JURISDICTION`` (canonical
    spelling, in the order given), empty when unset. ``may_process``: jurisdictions whose
    personal data it may process (every jurisdiction when unset in local/emulated).
    """

    environment: str
    declared: tuple[str, ...]
    may_process: tuple[str, ...]
    raw: str | None = None

    @property
    def is_declared(self) -> bool:
        """True when the variable names the worker's jurisdiction(s)."""
        return bool(self.declared)

    def describe(self) -> str:
        """``EU``, ``US,EU``, or ``all (undeclared)`` when the variable is unset."""
        return ",".join(self.declared) if self.declared else "all (undeclared)"

    def serves(self, jurisdiction: str) -> bool:
        """True when this worker may process personal data of ``jurisdiction``."""
        return jurisdiction in self.may_process

    @property
    def notice(self) -> str | None:
        """The line a caller logs visibly when the worker is undeclared (None when declared)."""
        if self.declared:
            return None
        return (
            f"{COMPUTE_ENV} is unset: this {self.environment} worker processes personal data "
            f"of every jurisdiction ({', '.join(self.may_process)}); a deployment declares "
            f"its workers' jurisdiction (in prod an unset {COMPUTE_ENV} is an error)"
        )

    def as_dict(self) -> dict[str, Any]:
        """The worker as JSON (``lakehouse policy``)."""
        return {
            "variable": COMPUTE_ENV,
            "value": self.raw,
            "declared": list(self.declared) or None,
            "may_process_personal_data_of": list(self.may_process),
        }


def worker_jurisdictions(cfg: LakeConfig) -> Worker:
    """The worker's declaration, read from ``LAKEHOUSE_COMPUTE_JURISDICTION`` now.

    Raises :class:`~pipelines.lake.config.ConfigError` (one line) when the variable is unset in
    ``prod``, empty, or names a jurisdiction the environment does not know.
    """
    known = cfg.jurisdictions
    raw = env(COMPUTE_ENV)
    if raw is None:
        if cfg.environment not in UNDECLARED_OK:
            raise ConfigError(
                f"{COMPUTE_ENV} is not set: in environment {cfg.environment!r} every worker "
                f"declares the jurisdiction it runs in (one of {', '.join(known)}, or a comma "
                "list); the deployment sets it (deploy/helm/values.yaml)"
            )
        return Worker(cfg.environment, (), tuple(known))
    items = [part.strip() for part in raw.split(",")]
    if not all(items):
        raise ConfigError(
            f"{COMPUTE_ENV}={raw!r} has an empty jurisdiction; name one or more separated by "
            f"commas (known: {', '.join(known)}), or unset it on a laptop"
        )
    canonical = {j.casefold(): j for j in known}
    unknown = [i for i in items if i.casefold() not in canonical]
    if unknown:
        raise ConfigError(
            f"{COMPUTE_ENV}={raw!r} names unknown jurisdiction(s) {', '.join(unknown)}; known in "
            f"environment {cfg.environment!r}: {', '.join(known)} (lakehouse.yaml regions and "
            "locations)"
        )
    declared = tuple(dict.fromkeys(canonical[i.casefold()] for i in items))
    may = sorted({j for d in declared for j in cfg.compute.processable_by(d)})
    return Worker(cfg.environment, declared, tuple(may), raw)


def personal_tables(tables: Iterable[str]) -> list[str]:
    """The tables among ``tables`` the registry marks as personal data, in order."""
    return list(dict.fromkeys(t for t in tables if holds_personal_data(t)))


@dataclass(frozen=True)
class ComputeGrant:
    """A step allowed to process one location's data on this worker, and why."""

    step: str
    location: str
    data_jurisdiction: str
    worker: str
    personal_tables: tuple[str, ...]
    rule: str

    def metadata(self) -> dict[str, str]:
        """What a materialization records about where it was computed."""
        return {
            "lakehouse/worker_jurisdiction": self.worker,
            "lakehouse/data_jurisdiction": self.data_jurisdiction,
            "lakehouse/compute_rule": self.rule,
        }


def _refuse_personal(
    cfg: LakeConfig, subject: str, loc: LakeLocation, personal: list[str], worker: Worker
) -> ComputeSovereigntyError:
    rules = "; ".join(
        f"compute.may_process.{d} = [{', '.join(cfg.compute.processable_by(d))}]"
        for d in worker.declared
    )
    return ComputeSovereigntyError(
        f"{subject} refused on this worker: it processes personal data of location "
        f"{loc.name} (jurisdiction {loc.jurisdiction}: {'; '.join(personal)}), but the worker "
        f"declares jurisdiction {worker.describe()} ({COMPUTE_ENV}={worker.raw!r}), which may "
        f"process personal data of {', '.join(worker.may_process)} only; rule: {rules} does "
        f"not list {loc.jurisdiction} - {RULE}; route the run to a worker of {loc.jurisdiction} "
        f"(run tag {cfg.compute.routing_tag}={loc.jurisdiction})",
        location=loc.name,
        data_jurisdiction=loc.jurisdiction,
        # at most three named: a refusal is one line, and the whole graph touches many tables
        data=f"personal data ({', '.join(personal[:3])}"
        + (f" and {len(personal) - 3} more)" if len(personal) > 3 else ")"),
        worker=f"{worker.describe()} ({COMPUTE_ENV}={worker.raw!r})",
        rule=f"{rules} does not list {loc.jurisdiction} - {RULE}",
    )


def check_personal(
    cfg: LakeConfig,
    step: str,
    location: LakeLocation,
    personal: Sequence[str],
    worker: Worker | None = None,
    subject: str | None = None,
) -> ComputeGrant:
    """Allow ``step`` to process personal data of ``location`` on this worker, or raise.

    ``personal`` says what the personal data is (table names, or the sync's reasons); it is
    named in the refusal, which starts with ``subject`` (default ``step '<step>'``). Raises
    :class:`ComputeSovereigntyError`.
    """
    worker = worker or worker_jurisdictions(cfg)
    data = location.jurisdiction
    if not worker.serves(data):
        raise _refuse_personal(cfg, subject or f"step {step!r}", location, list(personal), worker)
    rule = (
        "undeclared worker: every jurisdiction"
        if not worker.is_declared
        else f"compute.may_process lets {worker.describe()} process {data}"
    )
    return ComputeGrant(step, location.name, data, worker.describe(), tuple(personal), rule)


def check_compute(
    cfg: LakeConfig,
    step: str,
    location: LakeLocation | str,
    tables_read: Sequence[str] = (),
    tables_written: Sequence[str] = (),
    worker: Worker | None = None,
) -> ComputeGrant:
    """Allow ``step`` to process ``location``'s tables on this worker, or raise.

    Call it before the step opens any store: it needs only names. A step that reads or writes
    a registry personal-data table needs a worker that may process the location's
    jurisdiction; a PII-free step needs ``policy.allowed_routes`` of the data's jurisdiction to
    list one of the worker's. Raises :class:`ComputeSovereigntyError` naming the step, the
    data's jurisdiction, the worker's and the rule.
    """
    loc = cfg.location(location) if isinstance(location, str) else location
    worker = worker or worker_jurisdictions(cfg)
    personal = personal_tables([*tables_read, *tables_written])
    if personal:
        return check_personal(cfg, step, loc, personal, worker)
    data = loc.jurisdiction
    allowed = cfg.policy.allowed_routes.get(data, (data,))
    if worker.is_declared and not any(j in allowed for j in worker.declared):
        rule = (
            f"policy.allowed_routes.{data} = [{', '.join(allowed)}] lists none of them - "
            "data is processed only where it may go"
        )
        raise ComputeSovereigntyError(
            f"step {step!r} refused on this worker: it reads PII-free data of location "
            f"{loc.name} (jurisdiction {data}), but the worker declares jurisdiction "
            f"{worker.describe()} ({COMPUTE_ENV}={worker.raw!r}); rule: {rule}",
            location=loc.name,
            data_jurisdiction=data,
            data="PII-free data",
            worker=f"{worker.describe()} ({COMPUTE_ENV}={worker.raw!r})",
            rule=rule,
        )
    return ComputeGrant(
        step, loc.name, data, worker.describe(), (), f"PII-free: policy.allowed_routes.{data}"
    )


def check_locations(
    cfg: LakeConfig,
    step: str,
    locations: Iterable[LakeLocation],
    tables_read: Sequence[str] = (),
    tables_written: Sequence[str] = (),
    worker: Worker | None = None,
) -> list[ComputeGrant]:
    """:func:`check_compute` for every location a step touches, all before any is read."""
    worker = worker or worker_jurisdictions(cfg)
    unique = {loc.name: loc for loc in locations}
    return [
        check_compute(cfg, step, loc, tables_read, tables_written, worker)
        for loc in unique.values()
    ]


def routing_value(cfg: LakeConfig, locations: Iterable[LakeLocation], tables: Iterable[str]) -> str:
    """The routing tag's value for a run over ``locations`` touching ``tables``.

    The data's jurisdiction (several, comma-separated and sorted, for a run spanning them) when
    a table is personal data; :data:`ANY` when none is.
    """
    if not personal_tables(tables):
        return ANY
    return ",".join(sorted({loc.jurisdiction for loc in locations})) or ANY


def compute_rules(cfg: LakeConfig) -> dict[str, Any]:
    """The effective compute rules as JSON: the worker now, what it may process, where Spark is.

    The worker's declaration is read now. Unset in prod (an operator's machine, not a worker),
    the problem is reported in place of the worker so the rules can still be shown; a value
    that is set but wrong (an unknown or empty jurisdiction) raises, as for every command.
    """
    try:
        worker: Worker | None = worker_jurisdictions(cfg)
        problem = None
    except ConfigError as exc:
        if env(COMPUTE_ENV) is not None:
            raise
        worker, problem = None, str(exc)
    locations = []
    for loc in cfg.locations.values():
        endpoint = cfg.compute.endpoint(loc.name)
        locations.append(
            {
                "name": loc.name,
                "jurisdiction": loc.jurisdiction,
                "this_worker_may_process_its_personal_data": (
                    worker.serves(loc.jurisdiction) if worker else False
                ),
                "spark_endpoint": endpoint.describe() if endpoint else None,
            }
        )
    return {
        "environment": cfg.environment,
        "worker": worker.as_dict() if worker else {"variable": COMPUTE_ENV, "error": problem},
        "may_process": {j: list(cfg.compute.processable_by(j)) for j in cfg.jurisdictions},
        "personal_data_tables": [t.name for t in TABLES.values() if t.personal_data],
        "locations": locations,
        "routing_tag": cfg.compute.routing_tag,
        "pools": cfg.compute.pools,
        "pii_chain_routed_by": (
            "each code location's jurisdiction_chain_sensor"
            if cfg.compute.pools == PER_JURISDICTION
            else "Declarative Automation (one code location serves every jurisdiction)"
        ),
        "rule": RULE,
    }
