"""What a commit read: the input tables' versions a transform names in its commit, followed back.

A Spark step records the version of every table it read in its commit's ``userMetadata``
(``{"lakehouse.inputs": [{"uri": …, "version": …}]}``); a delta-rs writer may put the same
list under the commit's custom key ``lakehouse.inputs``. A sync copies commits as they are, so
a replica names what its source's commit read. :func:`upstream_versions` follows the chain
from a version of the features back through gold and silver to bronze: a model trained on that
features version is then pinned to the silver and bronze versions behind it (an erasure that
costs one of them marks the model).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pipelines.lake.delta.read import commit_infos

INPUTS_KEY = "lakehouse.inputs"
# commits read down from a version for the newest one naming its inputs (a table whose last
# LINEAGE_COMMITS name none, as a source table's, ends its branch there)
LINEAGE_COMMITS = 50


def inputs_metadata(inputs: Mapping[str, int]) -> str:
    """The commit metadata naming ``inputs`` (URI -> version read), as ``userMetadata``."""
    listed = [{"uri": u, "version": int(v)} for u, v in sorted(inputs.items())]
    return json.dumps({INPUTS_KEY: listed}, separators=(",", ":"))


def commit_inputs(entry: Mapping[str, Any]) -> dict[str, int]:
    """The inputs one history entry names (Spark's ``userMetadata`` or delta-rs's own key)."""
    raw: Any = entry.get(INPUTS_KEY)
    if raw is None and isinstance(entry.get("userMetadata"), str):
        try:
            raw = json.loads(entry["userMetadata"]).get(INPUTS_KEY)
        except (ValueError, AttributeError):
            raw = None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    out: dict[str, int] = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(item.get("uri"), str):
            version = item.get("version")
            if isinstance(version, int) and version >= 0:
                out[item["uri"]] = max(version, out.get(item["uri"], -1))
    return out


def upstream_versions(
    uri: str,
    version: int,
    options_for: Callable[[str], Mapping[str, str] | None],
    depth: int = 4,
) -> dict[str, int]:
    """The tables behind ``uri@version``, transitively: each at the version last read.

    That is what the newest commit up to ``version`` naming inputs read. A transform here
    names every table it read in each commit (a features step every region's gold, a gold step
    its silver), and a later commit read later versions, so the walk reads the log down from
    ``version`` only until that commit, at most ``LINEAGE_COMMITS`` commits (upkeep's and
    erasures' commits name none; a source table, bronze, never does): the cost is the few
    newest commits', whatever the table's history. Then it follows each input's version (at
    most ``depth`` levels). A table that is gone or unreadable ends its branch.
    """
    found: dict[str, int] = {}
    level = {uri: version}
    for _ in range(depth):
        following: dict[str, int] = {}
        for u, v in level.items():
            options = options_for(u)
            if options is None:  # in no location this lake knows: not opened
                continue
            try:
                history = commit_infos(
                    u,
                    dict(options),
                    v,
                    until=lambda e: bool(commit_inputs(e)),
                    limit=LINEAGE_COMMITS,
                )
            except Exception:  # gone, unreachable, or a feature delta-rs lacks: the branch ends
                continue
            for entry in history:
                for iu, iv in commit_inputs(entry).items():
                    if iv > following.get(iu, -1):
                        following[iu] = iv
        level = {u: v for u, v in following.items() if v > found.get(u, -1)}
        found.update(level)
        if not level:
            break
    return found
