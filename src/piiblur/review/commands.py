"""The ``audit``, ``apply`` and ``review`` subcommands (dispatched from ``piiblur.cli``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from piiblur.pipeline import Settings


def main(command: str, argv: Sequence[str], add_detection_options: Callable[[argparse.ArgumentParser], None],
         make_settings: Callable[[argparse.Namespace], Settings]) -> int:
    if command == "audit":
        from piiblur.audit import main as audit_main

        return audit_main(argv, add_detection_options, make_settings)
    if command == "apply":
        from piiblur.edits import main as apply_main

        return apply_main(argv, add_detection_options, make_settings)
    from piiblur.review.server import main as review_main

    return review_main(argv, add_detection_options, make_settings)
