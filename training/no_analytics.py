"""Training reports to no one either: imported before ultralytics by every script that uses it.

ultralytics 8.4 sends anonymous usage events (to Google Analytics: its version, Python, torch, the CPU, the
mode and task) whenever its ``sync`` setting is on, its default, and the machine can resolve public DNS
names; it also tries to fetch fonts and assets. ``YOLO_OFFLINE=1`` makes it take the machine as offline:
no events, no downloads. Set here unless the user set it (``piiblur/__init__.py`` does the same for
onnxruntime's telemetry).
"""

from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")
