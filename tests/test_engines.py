"""Engines yield outcomes; the batch records them, and an interrupt still gets what the engine finished."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from piiblur.batch import _drain
from piiblur.engines import ENGINES, engine
from piiblur.errors import UsageError


def _engine(finished: list[str]) -> Iterator[str]:
    try:
        yield "a"
        yield "b"
    except KeyboardInterrupt:  # as engines/local.py: what the workers finished, then stop
        yield from finished
        raise


@pytest.mark.parametrize("interrupted_at", ["a", "b"])
def test_an_interrupt_while_recording_hands_over_what_the_engine_finished(interrupted_at: str):
    seen: list[str] = []

    def record(outcome: str) -> None:
        seen.append(outcome)
        if outcome == interrupted_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _drain(_engine(["done in a worker"]), record)
    assert seen == [*(["a"] if interrupted_at == "b" else []), interrupted_at, "done in a worker"]


def test_engines_by_name():
    assert set(ENGINES) == {"local", "ray"}
    assert callable(engine("local"))
    with pytest.raises(UsageError, match="unknown engine"):
        engine("spark")
