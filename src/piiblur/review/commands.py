"""The ``audit``, ``apply`` and ``review`` subcommands (dispatched from ``piiblur.cli``)."""

from __future__ import annotations

from collections.abc import Sequence

from piiblur.cli_options import add_detection_options, settings_from


def main(command: str, argv: Sequence[str]) -> int:
    if command == "audit":
        from piiblur.audit import main as audit_main

        return audit_main(argv, add_detection_options, settings_from)
    if command == "apply":
        from piiblur.edits import main as apply_main

        return apply_main(argv, add_detection_options, settings_from)
    from piiblur.review.server import main as review_main

    return review_main(argv, add_detection_options, settings_from)
