"""Errors that end a whole run rather than one image's work."""

from __future__ import annotations


class UsageError(Exception):
    """A problem with what the user asked for (paths, options); nothing was done."""


class WorkerStartError(Exception):
    """No worker process could load the models: the batch cannot go on."""
