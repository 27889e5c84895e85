"""What a caller asks of a sync: one object from the CLI or the replica asset to the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.replication.deltalog import Hook


@dataclass(frozen=True)
class SyncOptions:
    """How one sync runs; the URIs and their storage options are given beside it.

    Built once by the caller (the ``lakehouse sync`` command, the replica asset) and read by
    the planner, the executor and the entry points. A :class:`~.deltalog.Remedy` that an
    engine error carries names the field that would let the sync go on.
    """

    table: str | None = None  # the name the policy knows; default the source URI's last segment
    allow_unchecked: bool = False  # a URI under no configured location (PII-free tables only)
    dry_run: bool = False  # plan and count, write nothing
    reseed: bool = False  # replace a diverged or outrun replica of the same table
    replace_unrelated: bool = False  # also replace another table found at the target
    concurrency: int = 16  # data files copied at once
    hook: Hook | None = field(default=None, repr=False, compare=False)  # after each object

    def __post_init__(self) -> None:
        """Refuse a concurrency that would copy nothing."""
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")


DEFAULT_OPTIONS = SyncOptions()  # a plain sync: no reseed, no dry run, 16 copies at once
