"""Run pii-blur from a source checkout: ``python pii-blur.py INPUT OUTPUT_DIR``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from piiblur.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
