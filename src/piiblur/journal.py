"""What earlier runs found, so that the report of a resumed run is complete.

While a run with ``--report FILE`` goes on, each result is appended, one JSON
line at a time and flushed, to ``FILE.partial`` beside the report. When the
run ends the report is written and the journal removed. A rerun (after a kill,
a crash or simply to pick up new images) reads the earlier report and any
journal left behind, and reports every image it skips with what the run that
wrote its output found.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from piiblur.pipeline import FileResult


class Journal:
    def __init__(self, report: Path) -> None:
        self.report = Path(report)
        self.path = self.report.with_name(self.report.name + ".partial")
        self._fh: IO[str] | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest record of each image (by its label) from the earlier report and journal."""
        records: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(OSError, ValueError):
            for entry in json.loads(self.report.read_text()).get("files", []):
                records[entry["source"]] = entry
        with contextlib.suppress(OSError), open(self.path) as fh:
            for line in fh:
                with contextlib.suppress(ValueError, KeyError, TypeError):  # a line cut by a kill
                    entry = json.loads(line)
                    records[entry["source"]] = entry
        return records

    def add(self, result: FileResult) -> None:
        if result.status == "skipped" and not result.detections:
            return  # nothing learnt
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a")  # noqa: SIM115 - kept open for the run
        self._fh.write(json.dumps(asdict(result)) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def discard(self) -> None:
        """The report is written: the journal is no longer needed."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
