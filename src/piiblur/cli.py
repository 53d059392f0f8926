"""The ``pii-blur`` command: a thin layer over ``piiblur.runner`` and ``piiblur.evaluate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from piiblur import __version__
from piiblur.detections import CLASSES
from piiblur.formats import DEFAULT_MAX_PIXELS
from piiblur.pipeline import DEFAULT_THRESHOLDS, FileResult, Settings
from piiblur.sphere import VIEW_SETS
from piiblur.storage import location

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CLASSES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(CLASSES)} (comma-separated)")
    return names


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return value


def _size(text: str) -> int:
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    number, unit = text.strip().upper().removesuffix("B"), ""
    if number[-1:] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError("a size such as 4G, 800M or 2000000000") from None
    if value < 64 * 2**20:
        raise argparse.ArgumentTypeError("at least 64M: a worker needs that much to load the models")
    return value


def _add_detection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("detection")
    group.add_argument("--classes", type=_classes, default=CLASSES, metavar="LIST",
                       help="what to blur, comma-separated (default: face,plate)")
    group.add_argument("--face-threshold", type=_fraction, default=DEFAULT_THRESHOLDS["face"], metavar="SCORE",
                       help="lowest face score that is blurred (default: %(default)s; in panoramas, down to half "
                       "of it when a closer look confirms the find)")
    group.add_argument("--plate-threshold", type=_fraction, default=DEFAULT_THRESHOLDS["plate"], metavar="SCORE",
                       help="lowest plate score that is blurred (default: %(default)s; in panoramas as for faces)")
    group.add_argument("--strength", type=float, default=1.0,
                       help="blur strength; sigma is a quarter of the region at 1.0 (default: %(default)s)")
    group.add_argument("--projection", choices=["auto", "equirectangular", "planar"], default="auto",
                       help="auto: a 360 panorama (GPano, or 2:1 and 2000+ px wide) is searched on views of the "
                       "sphere and blurred across its seam; planar: every image is a flat photo")
    group.add_argument("--views", choices=sorted(VIEW_SETS), default="standard",
                       help="views of the sphere searched in a panorama (default: %(default)s; see README)")
    group.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                       help="where the detectors run (default: auto, the GPU when onnxruntime has one)")
    group.add_argument("--precision", choices=["auto", "int8", "fp32"], default="auto",
                       help="model weights: auto = 8-bit on the CPU (faster), float on a GPU")
    group.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                       help="refuse images with more pixels than this (default: %(default)s)")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        classes=args.classes,
        thresholds={"face": args.face_threshold, "plate": args.plate_threshold},
        strength=args.strength,
        max_pixels=args.max_pixels,
        device=args.device,
        precision=args.precision,
        projection=args.projection,
        views=args.views,
    )


def blur_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pii-blur",
        description="Blur faces and licence plates in an image or a folder of images. "
        "Images with nothing to hide are copied unchanged. "
        "Run 'pii-blur evaluate --help' to measure recall on labelled images.",
    )
    parser.add_argument("input", type=location, metavar="INPUT",
                        help="an image or a folder (walked recursively); a local path or a URL such as "
                        "s3://bucket/prefix (anything fsspec reads)")
    parser.add_argument("output", type=location, metavar="OUTPUT_DIR",
                        help="where results go (created if missing); a local path or a URL")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report of every image")
    parser.add_argument("--dry-run", action="store_true", help="detect and report, write no images")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo every image; without it, an image is skipped only when the manifest in "
                        "OUTPUT_DIR/.pii-blur says pii-blur wrote its output from the same input with the same "
                        "settings and the output is unchanged")
    parser.add_argument("-j", "--jobs", type=int, default=0, metavar="N",
                        help="worker processes, or Ray actors (default: one per core, of the cluster for Ray)")
    parser.add_argument("--worker-memory", type=_size, metavar="SIZE",
                        help="most memory (address space) each worker process may take, e.g. 4G; an image "
                        "that needs more fails alone (local engine; default: no limit)")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: worker processes on this machine (default); ray: a Ray cluster "
                        "(pip install 'pii-blur[ray]')")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="the Ray cluster to join (e.g. ray://head:10001 or auto); default: RAY_ADDRESS, "
                        "else a local Ray started for this run")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    parser.add_argument("-v", "--verbose", action="store_true", help="print a line for every image")
    parser.add_argument("--version", action="version", version=f"pii-blur {__version__}")
    _add_detection_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        from piiblur.evaluate import main as evaluate_main

        return evaluate_main(argv[1:], _add_detection_options, _settings)
    args = blur_parser().parse_args(argv)
    return run_blur(args)


def run_blur(args: argparse.Namespace) -> int:
    from piiblur import report as reporting
    from piiblur.runner import UsageError, WorkerStartError, default_workers, is_terminal, plan, run

    try:
        jobs, not_images = plan(args.input, args.output)
    except (UsageError, ImportError) as exc:  # ImportError: a URL whose fsspec backend is not installed
        print(f"pii-blur: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.dry_run and isinstance(args.output, Path):
        args.output.mkdir(parents=True, exist_ok=True)
    progress = None
    if not args.quiet and len(jobs) > 1:
        progress = reporting.Progress(len(jobs), is_terminal())

    def on_result(result: FileResult) -> None:
        line = _result_line(result, args.verbose)
        if line:
            (progress.write if progress else lambda s: print(s, file=sys.stderr))(line)
        if progress:
            progress.update(result)

    settings = _settings(args)
    workers = args.jobs or (default_workers() if args.engine == "local" else 0)
    try:
        batch = run(jobs, settings, workers, args.dry_run, args.overwrite, on_result,
                    engine=args.engine, ray_address=args.ray_address, worker_memory=args.worker_memory)
    except UsageError as exc:
        print(f"pii-blur: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerStartError as exc:
        print(f"pii-blur: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if progress:
            progress.close()
    batch.not_images = not_images
    if args.report:
        reporting.write_report(args.report, reporting.as_json(batch, settings, args.input, args.output, args.dry_run))
    if not args.quiet:
        print(reporting.summary_line(batch, args.dry_run), file=sys.stderr)
    if batch.stopped_by is not None:
        print("pii-blur: interrupted; finished images are kept and recorded, rerun to do the rest", file=sys.stderr)
        return 128 + batch.stopped_by
    return EXIT_FAILED if batch.failed else EXIT_OK


def _result_line(result: FileResult, verbose: bool) -> str | None:
    """One line for an image: names and reasons with their control characters escaped, so always one line."""
    from piiblur.report import counted, printable

    source = printable(result.source)
    if result.status == "failed":
        return f"error: {source}: {printable(result.reason)}"
    if verbose:
        if result.status == "skipped":
            return f"skipped: {source}"
        found = f"{counted(result.count('face'), 'face')}, {counted(result.count('plate'), 'plate')}"
        return f"{result.status}: {source} ({found})"
    return None


if __name__ == "__main__":
    raise SystemExit(main())
