"""Weight-space ensemble of the base and the fine-tuned plate model (WiSE-FT, Wortsman et al. 2022):
every floating-point tensor becomes ``(1 - alpha) * base + alpha * fine_tuned``.

Fine-tuning on one country's dashcam plates taught the net those plates and made it forget much of what
the base knew (US and mixed plates fell 21-25 points). Interpolating the two sets of weights keeps most of
both. alpha is chosen on the dev halves of the evaluation sets only (``benchmarks/plates.py --half dev``;
training/README.md), never on the test halves that measure the result.

  python training/soup.py --fine-tuned training/checkpoint/last.pt --alpha 0.5 --out training/build/soup.pt

The output is an ultralytics checkpoint (the fine-tuned one's, with the mixed weights in ``model``), so
``training/export.py --weights training/build/soup.pt`` exports it like any other.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import no_analytics  # noqa: E402,F401 (before ultralytics)
from base_weights import fetch, sha256  # noqa: E402


def net(ckpt: dict):
    """The network of an ultralytics checkpoint: the EMA copy when it has one (that is what it exports)."""
    return (ckpt.get("ema") or ckpt["model"]).float()


def mix(base_sd: dict, ft_sd: dict, alpha: float) -> dict:
    out = {}
    for k, v in ft_sd.items():
        b = base_sd[k]
        if b.shape != v.shape:
            raise SystemExit(f"{k}: shapes differ {tuple(b.shape)} vs {tuple(v.shape)}")
        out[k] = (1 - alpha) * b + alpha * v if v.is_floating_point() else v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fine-tuned", default=str(HERE / "checkpoint" / "last.pt"))
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--out", default=str(HERE / "build" / "soup.pt"))
    args = ap.parse_args()

    import torch

    base = torch.load(fetch(), map_location="cpu", weights_only=False)
    ft = torch.load(args.fine_tuned, map_location="cpu", weights_only=False)
    model = net(ft)
    model.load_state_dict(mix(net(base).state_dict(), model.state_dict(), args.alpha))
    ft["model"], ft["ema"] = model.half(), None
    ft["soup"] = {"alpha": args.alpha, "base_sha256": sha256(fetch()), "fine_tuned": args.fine_tuned,
                  "fine_tuned_sha256": sha256(Path(args.fine_tuned))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(ft, args.out)
    print(args.out, sha256(Path(args.out)))


if __name__ == "__main__":
    main()
