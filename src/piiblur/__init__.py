"""pii-blur: find faces and licence plates in photos and panoramas and blur them."""

import os

# pii-blur reports to no one. Recent onnxruntime wheels for Linux (seen with 1.32.0) start a telemetry client
# when imported: a device id under ~/.cache/Microsoft, a session file in the temporary folder and a queue of
# usage reports for Microsoft's collector. Set before anything here imports onnxruntime, this turns it off in
# every pii-blur process, workers and Ray actors included (they import this package first); a user who sets
# the variable keeps their own choice (tests/test_no_telemetry.py).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

from piiblur.detections import CLASSES, Detections  # after the telemetry switch above

__all__ = ["CLASSES", "Detections", "__version__"]
