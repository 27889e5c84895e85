"""The errors of the sovereignty rules, apart so that policy and compute share them."""

from __future__ import annotations


class PolicyError(RuntimeError):
    """The sovereignty policy forbids a route; the message names table, route and rule."""


class ComputeSovereigntyError(PolicyError):
    """This worker may not process the data a step needs (:mod:`pipelines.sovereignty.compute`).

    The message names the step, the data's jurisdiction, the worker's and the rule; the parts
    are kept too (``location``, ``data_jurisdiction``, ``data``: what it is, ``worker``,
    ``rule``) so that a caller can phrase the refusal for its own reader.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str = "",
        data_jurisdiction: str = "",
        data: str = "",
        worker: str = "",
        rule: str = "",
    ) -> None:
        """The message, and its parts."""
        super().__init__(message)
        self.location = location
        self.data_jurisdiction = data_jurisdiction
        self.data = data
        self.worker = worker
        self.rule = rule
