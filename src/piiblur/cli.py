"""The ``pii-blur`` command: a thin layer over ``piiblur.batch`` and ``piiblur.evaluate``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from piiblur import __version__, storage
from piiblur.cli_options import add_detection_options, settings_from
from piiblur.errors import UsageError, WorkerStartError
from piiblur.formats import IMAGE_EXTENSIONS
from piiblur.results import FileResult
from piiblur.storage import Location

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
USAGE = ("pii-blur [options] INPUT OUTPUT_DIR\n       pii-blur evaluate IMAGES_DIR --labels FILE [options]\n"
         "       pii-blur audit DIR | review INPUT OUTPUT_DIR | apply INPUT OUTPUT_DIR --edits FILE  (--help each)")


def _location(text: str) -> Location:
    try:
        return storage.location(text)
    except ValueError as exc:  # an unknown URL scheme
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a number of seconds, such as 600 (0: no limit)") from None
    if not value >= 0 or value == float("inf"):  # NaN fails the comparison
        raise argparse.ArgumentTypeError("a number of seconds, 0 or more (0: no limit)")
    return value


def blur_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pii-blur",
        usage=USAGE,
        description="Blur faces and licence plates in an image or a folder of images. "
        "Images with nothing to hide are copied unchanged. Nothing is ever written where the input lives: "
        "OUTPUT_DIR may not be the input folder, lie inside it or hold it, and every write stays inside "
        "OUTPUT_DIR, symlinks followed. "
        "Run 'pii-blur evaluate --help' to measure recall on labelled images.",
        epilog="Hidden files and folders (names starting with a dot, such as .DS_Store or macOS ._x.jpg) are "
        "skipped and counted in the summary. A folder that cannot be read is an error. "
        "Exit status: 0 all done, 1 something failed, 2 a usage problem (nothing done).",
    )
    parser.add_argument("input", type=_location, metavar="INPUT",
                        help="an image or a folder (walked recursively); a local path or a URL such as "
                        "s3://bucket/prefix (anything fsspec reads)")
    parser.add_argument("output", type=_location, metavar="OUTPUT_DIR",
                        help="where results go (created if missing); a local path or a URL")
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="write a JSON report of every image. FILE may lie in OUTPUT_DIR or anywhere else "
                        "outside the input; it may not be an input file, lie inside the input folder or have "
                        "an image file's extension (checked before any work starts)")
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
    parser.add_argument("--time-limit", type=_seconds, metavar="SECONDS",
                        help="most time one image may take; a worker still on it then is stopped and replaced, "
                        "and the image fails alone (default 3600 with worker processes and Ray actors, 0: no "
                        "limit; -j 1 runs in pii-blur's own process, without a limit, unless this or "
                        "--worker-memory is given)")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: worker processes on this machine (default); ray: a Ray cluster "
                        "(pip install 'pii-blur[ray]')")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="the Ray cluster to join (e.g. ray://head:10001 or auto); default: RAY_ADDRESS, "
                        "else a local Ray started for this run")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    parser.add_argument("-v", "--verbose", action="store_true", help="print a line for every image")
    parser.add_argument("--version", action="version", version=f"pii-blur {__version__}")
    add_detection_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        from piiblur.evaluate import main as evaluate_main

        return evaluate_main(argv[1:])
    if argv and argv[0] in ("audit", "review", "apply"):
        from piiblur.review.commands import main as review_main

        return review_main(argv[0], argv[1:])
    args = blur_parser().parse_args(argv)
    return run_blur(args)


def run_blur(args: argparse.Namespace) -> int:
    from piiblur import report as reporting
    from piiblur.batch import plan, run
    from piiblur.engines.sizing import default_workers

    try:
        jobs, passed = plan(args.input, args.output)
        if args.report:
            check_report(args.report, args.input)
    except (UsageError, ImportError) as exc:  # ImportError: a URL whose fsspec backend is not installed
        return _fail(str(exc), EXIT_USAGE)
    except OSError as exc:  # a URL that cannot be reached, a report folder that cannot be written
        return _fail(str(exc), EXIT_FAILED)
    problem = None if args.dry_run else _prepare_output(args.output)
    if problem:
        return _fail(problem, EXIT_FAILED)
    progress = reporting.Progress(len(jobs), sys.stderr.isatty()) if not args.quiet and len(jobs) > 1 else None
    on_result = _on_result(progress, args.verbose)
    for result in passed.folder_failures():
        print(_result_line(result, False), file=sys.stderr)
    settings = settings_from(args)
    workers = args.jobs or (default_workers() if args.engine == "local" else 0)
    try:
        batch = run(jobs, settings, workers, args.dry_run, args.overwrite, on_result, engine=args.engine,
                    ray_address=args.ray_address, worker_memory=args.worker_memory, passed=passed,
                    time_limit=args.time_limit)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except WorkerStartError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:  # e.g. the output listing of a URL that stopped answering
        return _fail(str(exc), EXIT_FAILED)
    finally:
        if progress:
            progress.close()
    code = EXIT_FAILED if batch.failed else EXIT_OK
    if args.report:
        try:
            reporting.write_report(args.report, reporting.as_json(batch, settings, args.input, args.output,
                                                                  args.dry_run))
        except OSError as exc:  # the manifest in OUTPUT_DIR keeps what was found
            code = _fail(f"cannot write the report {args.report}: {exc.strerror or exc}", EXIT_FAILED)
    if not args.quiet:
        print(reporting.summary_line(batch, args.dry_run), file=sys.stderr)
    if batch.stopped_by is not None:
        return _fail("interrupted; finished images are kept and recorded, rerun to do the rest", 128 + batch.stopped_by)
    return code


def _on_result(progress: Any, verbose: bool) -> Callable[[FileResult], None]:
    def on_result(result: FileResult) -> None:
        line = _result_line(result, verbose)
        if line:
            (progress.write if progress else lambda s: print(s, file=sys.stderr))(line)
        if progress:
            progress.update(result)

    return on_result


def _fail(message: str, code: int) -> int:
    print(f"pii-blur: {message}", file=sys.stderr)
    return code


def check_report(report: Path, input_path: Location) -> None:
    """Refuse a report path that could destroy an image or the input; checked before any work."""
    if report.suffix.lower() in IMAGE_EXTENSIONS:
        raise UsageError(f"report {report} has an image file's name; a report is JSON: choose e.g. report.json")
    if report.is_dir():
        raise UsageError(f"report {report} is a folder; give a file name")
    if storage.same(report, input_path) or storage.inside(report, input_path):
        raise UsageError(f"report {report} would be written in the input {input_path}; choose a place outside "
                         "it (OUTPUT_DIR is fine)")
    folder = report.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"report {report}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(f"cannot write the report {report}: {folder} is not writable")


def _prepare_output(output: Location) -> str | None:
    """Create a local OUTPUT_DIR and make sure it can be written; the problem, or None."""
    if not isinstance(output, Path):
        return None
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the output folder {output}: {exc.strerror or exc}"
    if not os.access(output, os.W_OK | os.X_OK):
        return f"cannot write in the output folder {output}"
    return None


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
