"""The default worker count and threads: one worker per core, as many as the memory holds."""

from __future__ import annotations

from piiblur.engines import sizing


def test_one_worker_per_core_when_memory_allows(monkeypatch):
    monkeypatch.setattr(sizing, "cores", lambda: 16)
    monkeypatch.setattr(sizing, "available_memory", lambda: 64 * 2**30)
    assert sizing.default_workers() == 16
    assert sizing.threads_per_worker(16) == 1
    assert sizing.threads_per_worker(1) == 16
    assert sizing.threads_per_worker(5) == 3


def test_no_more_workers_than_the_memory_holds(monkeypatch):
    monkeypatch.setattr(sizing, "cores", lambda: 16)
    monkeypatch.setattr(sizing, "available_memory", lambda: 4 * 2**30)
    assert sizing.default_workers() == 4 * 2**30 // sizing.WORKER_MEMORY
    monkeypatch.setattr(sizing, "available_memory", lambda: 2**20)
    assert sizing.default_workers() == 1
    monkeypatch.setattr(sizing, "available_memory", lambda: None)
    assert sizing.default_workers() == 16


def test_this_machine():
    assert 1 <= sizing.default_workers() <= sizing.cores()
    memory = sizing.available_memory()
    assert memory is None or memory >= 0
