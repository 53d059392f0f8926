"""Fine-tune the plate YOLOv8n (fastanpr 0.1.13 best.pt) on the dataset of build_dataset.py.

  python training/train.py                      # from the base weights
  python training/train.py --resume             # continue training/runs/<name>/weights/last.pt
                                                #  (or training/checkpoint/last.pt when runs/ is gone)
  python training/train.py --resume --epochs 12 # go on with a finished run, to 12 epochs in all
  python training/train.py --until 12:05        # a time budget (UTC clock time): ultralytics' ``time``
                                                #  mode re-sizes the epoch count after the first epoch

At the end of every epoch the last checkpoint is copied to training/checkpoint/last.pt (kept in git,
so a later session can resume) and training/checkpoint/progress.json records the epoch's metrics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import no_analytics  # noqa: E402,F401 (before ultralytics)
from base_weights import fetch, sha256  # noqa: E402

CKPT_DIR = HERE / "checkpoint"
RUNS = HERE / "runs"

HYP = dict(
    imgsz=640,
    batch=16,
    nbs=16,  # one optimizer step per batch (ultralytics' default 64 would accumulate 4 batches: few steps on a CPU)
    workers=1,
    seed=0,
    deterministic=True,
    optimizer="AdamW",
    lr0=0.001,  # fine-tune: half of what ultralytics' "auto" picks for one class
    lrf=0.1,
    momentum=0.9,
    weight_decay=0.0005,
    warmup_epochs=0.5,
    warmup_bias_lr=0.0,
    mosaic=0.0,  # the crops already carry their context; mosaic would shrink small plates further
    close_mosaic=0,
    mixup=0.0,
    degrees=0.0,
    translate=0.1,
    scale=0.3,
    fliplr=0.5,
    hsv_h=0.015,
    hsv_s=0.5,
    hsv_v=0.4,
    cache=False,  # decoding a 640 px JPEG is cheap next to a CPU training step; keeps runs deterministic
    freeze=4,  # the stem (layers 0-3, stride 2-8) stays as trained: generic edges, a quarter of the FLOPs
    device="cpu",
    amp=False,
    plots=False,
    save_period=1,
    patience=50,
    exist_ok=True,
    verbose=True,
)


def hours_until(clock: str) -> float:
    now = dt.datetime.now(dt.UTC)
    h, m = (int(v) for v in clock.split(":"))
    end = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if end <= now:
        end += dt.timedelta(days=1)
    return (end - now).total_seconds() / 3600


def compact_checkpoint(src: Path, dst: Path) -> bool:
    """``src`` (ultralytics last.pt) without the optimizer moments: about 6 MB instead of 30, still
    resumable (``--resume`` restarts AdamW's moments; weights, EMA, epoch and arguments are kept)."""
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    if ckpt.get("epoch", -1) < 0:
        return False  # already stripped (the run has ended): not resumable, keep the epoch's copy
    ckpt["optimizer"] = None
    tmp = dst.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(dst)
    return True


def epoch_callback(trainer) -> None:
    """Copy last.pt (compact) into the repository and log the epoch's metrics."""
    CKPT_DIR.mkdir(exist_ok=True)
    prog_file = CKPT_DIR / "progress.json"
    prog = json.loads(prog_file.read_text()) if prog_file.exists() else {"epochs": []}
    metrics = {k: round(float(v), 5) for k, v in (trainer.metrics or {}).items()}
    entry = {"epoch": trainer.epoch + 1, "of": trainer.epochs,
             "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
             "elapsed_s": round(time.time() - trainer.train_time_start, 1),
             "epoch_s": round(getattr(trainer, "epoch_time", 0) or 0, 1), "metrics": metrics,
             "run": str(trainer.save_dir)}
    # the closing validation of best.pt runs the callback once more, after last.pt was stripped
    if Path(trainer.last).exists() and compact_checkpoint(Path(trainer.last), CKPT_DIR / "last.pt"):
        prog["epochs"].append(entry)
    else:
        prog["final_val_best"] = entry
    prog_file.write_text(json.dumps(prog, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(HERE / "build" / "dataset" / "data.yaml"))
    ap.add_argument("--name", default="ft")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs (default 6); with --resume: train up to this many in all (a finished run goes on)")
    ap.add_argument("--save-dir", default=None, help="with --resume: write the run here instead of where it was")
    ap.add_argument("--until", default=None, help="UTC clock time HH:MM by which training must end")
    ap.add_argument("--hours", type=float, default=None, help="time budget in hours (instead of --until)")
    ap.add_argument("--batch", type=int, default=HYP["batch"])
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, help="start from these weights (.pt) instead of the base, e.g. a soup")
    ap.add_argument("--lr0", type=float, default=HYP["lr0"])
    ap.add_argument("--freeze", type=str, default=str(HYP["freeze"]),
                    help="the first N layers stay as they are; or a list of layer numbers, e.g. 0,1,2,3,22 "
                    "(22: the detection head)")
    ap.add_argument("--degrees", type=float, default=HYP["degrees"],
                    help="rotate each training image by up to this many degrees either way (rolled plates)")
    ap.add_argument("--distill", default=None,
                    help="a teacher (.pt) the net is also pulled toward on every image (distill.py)")
    ap.add_argument("--distill-weight", type=float, default=1.0)
    ap.add_argument("--fraction", type=float, default=1.0, help="train on this share of the dataset (a quick try)")
    ap.add_argument("--checkpoint-dir", default=None,
                    help="where the compact last.pt and progress go (default training/checkpoint)")
    args = ap.parse_args()
    global CKPT_DIR
    if args.checkpoint_dir:
        CKPT_DIR = Path(args.checkpoint_dir)

    from ultralytics import YOLO

    if args.distill:
        import distill

        distill.install(args.distill, args.distill_weight)
    if args.resume:
        import torch

        # ultralytics strips last.pt when a run ends (epoch -1, no optimizer): then the compact copy resumes
        cands = [RUNS / args.name / "weights" / "last.pt", CKPT_DIR / "last.pt"]
        cands = [c for c in cands if c.exists()]
        usable = [c for c in cands if torch.load(c, map_location="cpu", weights_only=False).get("epoch", -1) >= 0]
        if not usable:
            raise SystemExit(f"no resumable checkpoint among {cands}")
        last = usable[0]
        print("resuming from", last, flush=True)
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        data = ckpt["train_args"]["data"]  # ultralytics would fall back to its coco8 sample without it
        if args.epochs:  # ultralytics keeps the checkpoint's epoch count on resume: rewrite it in a copy
            ckpt["train_args"]["epochs"] = args.epochs
            moved = RUNS / args.name / "weights" / "resume_from.pt"
            moved.parent.mkdir(parents=True, exist_ok=True)
            torch.save(ckpt, moved)
            last = moved
        model = YOLO(str(last))
        model.add_callback("on_fit_epoch_end", epoch_callback)
        budget = args.hours if args.hours is not None else (hours_until(args.until) if args.until else None)
        kw = {"data": data, **({"time": round(budget, 3)} if budget else {})}
        if args.save_dir:
            kw["save_dir"] = args.save_dir
        model.train(resume=True, **kw)
        return

    base = Path(args.init) if args.init else fetch()
    budget = args.hours if args.hours is not None else (hours_until(args.until) if args.until else None)
    freeze: int | list[int] = [int(x) for x in args.freeze.split(",")] if "," in args.freeze else int(args.freeze)
    hyp = dict(HYP, batch=args.batch, lr0=args.lr0, freeze=freeze, degrees=args.degrees, fraction=args.fraction)
    CKPT_DIR.mkdir(exist_ok=True)
    teacher = {"distill": Path(args.distill).name, "distill_sha256": sha256(Path(args.distill)),
               "distill_weight": args.distill_weight} if args.distill else {}
    (CKPT_DIR / "train_args.json").write_text(json.dumps(
        {"base": str(base.name), "base_sha256": sha256(base), **teacher, "data": args.data, "epochs": args.epochs or 6,
         "time_hours": budget, "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **hyp},
        indent=1))
    (CKPT_DIR / "progress.json").write_text(json.dumps({"epochs": []}))
    model = YOLO(str(base))
    model.add_callback("on_fit_epoch_end", epoch_callback)
    kw = dict(hyp, data=args.data, epochs=args.epochs or 6, project=str(RUNS), name=args.name)
    if budget:
        kw["time"] = round(budget, 3)
    model.train(**kw)


if __name__ == "__main__":
    main()
