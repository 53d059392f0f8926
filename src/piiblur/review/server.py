"""``pii-blur review INPUT OUTPUT_DIR``: a local page to check the output and correct it before publishing.

The standard library's ``http.server`` (threaded), so the page needs nothing installed. Safety:

* it listens on 127.0.0.1 only, and answers only requests whose path starts with a random token (the
  URL printed and opened) and whose Host is 127.0.0.1 or localhost at its port (no DNS rebinding);
* it serves the page's own files and image files inside INPUT and OUTPUT_DIR, nothing else: a name is
  resolved (symlinks followed) and must stay inside its root, must not be hidden, and must have an
  image's extension (``..``, absolute names, NUL bytes are refused);
* it writes only the edits file (the sidecar: next to the report, else OUTPUT_DIR/.pii-blur/edits.json)
  and, when asked to apply, the edited images inside OUTPUT_DIR; the input is never written;
* a POST must be JSON (``Content-Type: application/json``) and, when the browser says where it comes
  from, come from the page's own origin: another site cannot post edits.

Every edit is saved as it is made (atomically), so closing the browser or stopping the server loses
nothing; ``pii-blur apply`` writes the same sidecar without the page.
"""

from __future__ import annotations

import argparse
import hmac
import io
import json
import secrets
import sys
import threading
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image, ImageOps

from piiblur.audit import image_files
from piiblur.edits import ImageEdits, apply_edits, check_entry, load_edits, revised, save_edits
from piiblur.formats import IMAGE_EXTENSIONS
from piiblur.pipeline import Settings
from piiblur.projections import gpano

HOST = "127.0.0.1"
PAGE_SIZE_MAX = 500
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "review.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
    "vendor/pannellum/pannellum.js": "text/javascript; charset=utf-8",
    "vendor/pannellum/pannellum.css": "text/css; charset=utf-8",
    "vendor/pannellum/LICENSE": "text/plain; charset=utf-8",
}
BROWSER_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg", ".jfif": "image/jpeg",
                 ".mpo": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif",
                 ".avif": "image/avif", ".bmp": "image/bmp"}
# browsers show neither TIFF nor HEIF: those are sent as an upright JPEG preview of the same size
_SWAPPED = {5, 6, 7, 8}  # EXIF orientations that turn the picture a quarter


class Review:
    """What the page shows and edits: the two folders, the reports, the sidecar."""

    def __init__(self, input_root: Path, output_root: Path, settings: Settings, report: dict[str, Any] | None = None,
                 audit: dict[str, Any] | None = None, edits_path: Path | None = None) -> None:
        self.input_root, self.output_root = input_root.resolve(), output_root.resolve()
        self.settings = settings
        self.report_files = {str(f.get("source")): f for f in (report or {}).get("files", [])}
        self.findings: dict[str, list[dict[str, Any]]] = {}
        for finding in (audit or {}).get("findings", []):
            self.findings.setdefault(str(finding.get("file")), []).append(finding)
        self.edits_path = edits_path or self.output_root / ".pii-blur" / "edits.json"
        self.edits = load_edits(self.edits_path)
        self.lock = threading.Lock()
        self._names: list[str] | None = None
        self.dirty = {name for name, edits in self.edits.items() if edits.pending}  # not yet in the output

    # -- listing ----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self.lock:
            if self._names is None:
                self._names = [name for _path, name in image_files(self.output_root)]
            return self._names

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        names = self.names()
        items = []
        for name in names[offset : offset + limit]:
            entry = self.report_files.get(name, {})
            detections = entry.get("detections", [])
            with self.lock:
                edits = self.edits.get(name)
            items.append({
                "name": name,
                "faces": sum(1 for d in detections if d.get("class") == "face"),
                "plates": sum(1 for d in detections if d.get("class") == "plate"),
                "projection": entry.get("projection"),
                "flagged": len(self.findings.get(name, [])),
                "edited": bool(edits and not edits.empty),
            })
        return {"offset": offset, "total": len(names), "images": items}

    # -- one image --------------------------------------------------------------------------------
    def image(self, name: str) -> dict[str, Any]:
        path = self.file("output", name)
        entry = self.report_files.get(name)
        if entry and entry.get("width") and entry.get("height"):
            width, height, orientation = int(entry["width"]), int(entry["height"]), int(entry.get("orientation", 1))
            projection = entry.get("projection", "planar")
        else:
            width, height, orientation, projection = _probe(path, self.settings.projection)
        if orientation in _SWAPPED:
            width, height = height, width
        edits = self.edits.get(name) or ImageEdits()
        return {
            "name": name,
            "width": width,
            "height": height,
            "projection": projection,
            "detections": (entry or {}).get("detections", []),
            "findings": self.findings.get(name, []),
            "rejected": sorted(set(edits.rejected)),
            "added": edits.added,
            "has_input": self._has_input(name),
            "version": path.stat().st_mtime_ns,
        }

    def _has_input(self, name: str) -> bool:
        try:
            self.file("input", name)
        except (FileNotFoundError, PermissionError):
            return False
        return True

    def file(self, root: str, name: str) -> Path:
        """The image ``name`` inside INPUT or OUTPUT_DIR; FileNotFoundError or PermissionError otherwise."""
        if "\x00" in name or name.startswith(("/", "\\")) or any(part in ("", ".", "..") or part.startswith(".")
                                                                 for part in name.split("/")):
            raise PermissionError(name)
        if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
            raise PermissionError(name)
        base = self.output_root if root == "output" else self.input_root
        if root == "input" and base.is_file():
            if name != base.name:
                raise FileNotFoundError(name)
            return base
        path = (base / name).resolve()
        if not path.is_relative_to(base):
            raise PermissionError(name)
        if not path.is_file():
            raise FileNotFoundError(name)
        return path

    # -- edits ------------------------------------------------------------------------------------
    def save(self, name: str, rejected: Any, added: Any) -> ImageEdits:
        self.file("output", name)  # only images that are there
        detections = (self.report_files.get(name) or {}).get("detections", [])
        entry = check_entry({"detections": detections, "rejected": rejected, "added": added}, name)
        with self.lock:
            entry = revised(self.edits.get(name), entry)
            self.edits[name] = entry
            self.dirty.add(name)
            save_edits(self.edits_path, self.edits, {"input": str(self.input_root), "output": str(self.output_root)})
        return entry

    def apply(self, names: list[str] | None) -> list[dict[str, Any]]:
        """Write the edits of ``names``, or of every image edited since the last apply, into OUTPUT_DIR."""
        with self.lock:
            chosen = sorted(self.dirty) if names is None else names
            results = apply_edits(self.input_root, self.output_root, self.edits, self.settings, chosen)
            self.dirty -= {r.name for r in results if r.status == "written"}
            save_edits(self.edits_path, self.edits, {"input": str(self.input_root), "output": str(self.output_root)})
        return [{"name": r.name, "status": r.status, "reason": r.reason, "notes": r.notes} for r in results]


def _probe(path: Path, projection: str) -> tuple[int, int, int, str]:
    """(width, height, EXIF orientation, projection) read from the file's header, without decoding it."""
    with Image.open(path) as image:
        width, height = image.size
        orientation = int(image.getexif().get(0x0112, 1) or 1)
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    geo = None if orientation != 1 else gpano.equirect_for(width, height, head, projection)
    return width, height, orientation, "equirectangular" if geo is not None else "planar"


def _preview(path: Path) -> bytes:
    """A JPEG of the upright picture, for the formats browsers cannot show."""
    with Image.open(path) as image:
        picture = ImageOps.exif_transpose(image).convert("RGB")
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


class ReviewHandler(BaseHTTPRequestHandler):
    """The page's requests; ``make_handler`` makes a subclass bound to one review and its token."""

    review: Review
    token: str
    static = resources.files("piiblur.review") / "static"
    server_version = "pii-blur-review"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
        return

    # -- checks ----------------------------------------------------------------------------
    def _allowed(self) -> str | None:
        """The path after the token, or None (and an error sent) when the request is refused."""
        port = self.server.server_address[1]
        host = self.headers.get("Host", "")
        if host not in (f"{HOST}:{port}", f"localhost:{port}"):
            self._send_error(HTTPStatus.FORBIDDEN, "wrong host")
            return None
        parts = urlsplit(self.path)
        prefix = f"/{self.token}/"
        if not hmac.compare_digest(parts.path[: len(prefix)].encode(), prefix.encode()):
            self._send_error(HTTPStatus.NOT_FOUND, "not found")
            return None
        return parts.path[len(prefix):]

    def _query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    # -- answers ---------------------------------------------------------------------------
    def _headers(self, status: int, content_type: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; "
                         "style-src 'self' 'unsafe-inline'; connect-src 'self' blob: data:; frame-ancestors 'none'")
        self.end_headers()

    def _send(self, body: bytes, content_type: str, status: int = HTTPStatus.OK) -> None:
        self._headers(status, content_type, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, value: Any, status: int = HTTPStatus.OK) -> None:
        self._send(json.dumps(value).encode(), "application/json", status)

    def _send_error(self, status: int, message: str) -> None:
        self._send_json({"error": message}, status)

    def _send_file(self, path: Path) -> None:
        if path.suffix.lower() not in BROWSER_TYPES:
            self._send(_preview(path), "image/jpeg")
            return
        size = path.stat().st_size
        self._headers(HTTPStatus.OK, BROWSER_TYPES.get(path.suffix.lower(), "application/octet-stream"), size)
        if self.command == "HEAD":
            return
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                self.wfile.write(chunk)

    # -- methods ---------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        rest = self._allowed()
        if rest is None:
            return
        try:
            self._get(unquote(rest))
        except PermissionError:
            self._send_error(HTTPStatus.FORBIDDEN, "refused")
        except (FileNotFoundError, KeyError):
            self._send_error(HTTPStatus.NOT_FOUND, "not found")
        except (OSError, ValueError) as exc:
            self._send_error(HTTPStatus.BAD_REQUEST, str(exc))

    def _get(self, rest: str) -> None:
        if rest in ("", "index.html"):
            self._send((self.static / "index.html").read_bytes(), STATIC_FILES["index.html"])
        elif rest.startswith("static/") and rest[len("static/"):] in STATIC_FILES:
            name = rest[len("static/"):]
            self._send(self.static.joinpath(*name.split("/")).read_bytes(), STATIC_FILES[name])
        elif rest == "api/images":
            query = self._query()
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
            self._send_json(self.review.page(max(0, offset), min(max(1, limit), PAGE_SIZE_MAX)))
        elif rest == "api/image":
            self._send_json(self.review.image(self._query()["name"]))
        elif rest.startswith(("file/output/", "file/input/")):
            root, _, name = rest[len("file/"):].partition("/")
            self._send_file(self.review.file(root, name))
        else:
            raise FileNotFoundError(rest)

    def do_POST(self) -> None:
        rest = self._allowed()
        if rest is None:
            return
        port = self.server.server_address[1]
        origin = self.headers.get("Origin")
        if origin is not None and origin not in (f"http://{HOST}:{port}", f"http://localhost:{port}"):
            self._send_error(HTTPStatus.FORBIDDEN, "wrong origin")
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._send_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "JSON only")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 <= length <= 1 << 20:
                raise ValueError("request too large")
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("a JSON object, please")
            if rest == "api/edits":
                entry = self.review.save(str(body["name"]), body.get("rejected", []), body.get("added", []))
                self._send_json({"saved": True, "rejected": entry.rejected, "added": entry.added})
            elif rest == "api/apply":
                names = body.get("names")
                if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                    raise ValueError("names: a list of image names")
                self._send_json({"results": self.review.apply(names)})
            else:
                raise FileNotFoundError(rest)
        except PermissionError:
            self._send_error(HTTPStatus.FORBIDDEN, "refused")
        except (FileNotFoundError, KeyError) as exc:
            self._send_error(HTTPStatus.NOT_FOUND, f"not found: {exc}")
        except (ValueError, TypeError, OSError) as exc:
            self._send_error(HTTPStatus.BAD_REQUEST, str(exc))


def make_handler(review: Review, token: str) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (ReviewHandler,), {"review": review, "token": token})


def start(review: Review, port: int = 0, token: str | None = None) -> tuple[ThreadingHTTPServer, str]:
    """Start serving in a background thread; (server, the page's URL)."""
    token = token or secrets.token_urlsafe(24)
    server = ThreadingHTTPServer((HOST, port), make_handler(review, token))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="pii-blur-review", daemon=True)
    thread.start()
    return server, f"http://{HOST}:{server.server_address[1]}/{token}/"


def main(argv: Sequence[str], add_detection_options: Callable[[argparse.ArgumentParser], None],
         make_settings: Callable[[argparse.Namespace], Settings]) -> int:
    parser = argparse.ArgumentParser(
        prog="pii-blur review",
        description="Check and correct blurred output in the browser before publishing: each image with its "
        "detections (a panorama in a 360 viewer), reject a detection, draw a box for a miss; edits are saved "
        "as they are made, and written into OUTPUT_DIR losslessly when you apply them (key s). "
        "Serves on 127.0.0.1 only, behind a random token.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="the folder (or image) that was blurred")
    parser.add_argument("output", type=Path, metavar="OUTPUT_DIR", help="the blurred output")
    parser.add_argument("--report", type=Path, metavar="FILE", help="the blurring run's JSON report (detections)")
    parser.add_argument("--audit", type=Path, metavar="FILE", help="a 'pii-blur audit --report' file: its finds "
                        "are shown too")
    parser.add_argument("--edits", type=Path, metavar="FILE", help="the sidecar of edits (default: next to the "
                        "report, else OUTPUT_DIR/.pii-blur/edits.json)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL, do not open a browser")
    add_detection_options(parser)
    args = parser.parse_args(list(argv))
    if not args.input.exists() or not args.output.is_dir():
        parser.error("INPUT must exist and OUTPUT_DIR must be a folder")
    input_dir = args.input.resolve() if args.input.is_dir() else args.input.resolve().parent
    if args.output.resolve() == input_dir or (args.output.resolve().is_relative_to(input_dir) and args.input.is_dir()):
        parser.error("OUTPUT_DIR is INPUT or lies inside it")
    try:
        report = json.loads(args.report.read_text()) if args.report else None
        audit = json.loads(args.audit.read_text()) if args.audit else None
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"cannot read a report: {exc}")
    edits_path = args.edits or (args.report.with_name(args.report.stem + ".edits.json") if args.report else None)
    for written in (edits_path,):
        if written is not None and written.resolve().is_relative_to(input_dir) and args.input.is_dir():
            parser.error(f"{written} lies inside INPUT, which is never written")
    settings = make_settings(args)
    if report and isinstance(report.get("settings", {}).get("strength"), int | float):
        settings = replace(settings, strength=float(report["settings"]["strength"]))  # as the output was blurred
    try:
        review = Review(args.input, args.output, settings, report, audit, edits_path)
    except ValueError as exc:
        parser.error(str(exc))
    server, url = start(review, args.port)
    print(f"pii-blur review: {url}\n(edits go to {review.edits_path}; Ctrl-C stops)", file=sys.stderr)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


__all__ = ["Review", "main", "start"]
