"""Where images come from and go to: local paths, or URLs through fsspec.

A location is a ``Path`` (local, the fast ``os`` path) or a URL string such as
``s3://bucket/prefix`` (any filesystem fsspec knows; ``s3://`` needs the
``[s3]`` extra). Every function here takes either.

Results are written atomically: a reader never sees a half-written file under
its final name.

* Local files and filesystems that have a rename (``file://``, ``memory://``,
  SFTP, ...): the bytes go to a temporary ``.NAME.PID.pii-blur-tmp`` beside the
  target, which is then moved onto the final name. Temporaries left by a killed
  run are swept by the next run.
* Object stores (S3, GCS, Azure): one PUT of the complete bytes to the final
  key. The store makes an object visible only once its upload has completed
  (a multipart upload included), so this is already atomic, and it avoids a
  copy-then-delete that would double the traffic. A killed upload leaves no
  object, at most an unfinished multipart upload, which a bucket lifecycle rule
  (AbortIncompleteMultipartUpload) cleans up.

"Up to date" means the target exists and is at least as new as the source. A
local copy keeps the source's modification time; an object's time is the
moment its upload finished, which comes after the source's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import mimetypes
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".pii-blur-tmp"
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oss", "r2"})

LOCAL_SCHEMES = ("file", "local")

Location = Path | str  # a local path, or a URL string


class Refused(OSError):
    """A file that is not read or written, on purpose: the message says why."""


class Unreachable(OSError):
    """A URL whose filesystem did not answer (no network, no credentials, ...)."""


def location(text: str | Path) -> Location:
    """A command-line argument as a location: a URL stays a string, anything else is a Path.

    ``file://`` (and fsspec's ``local://``) URLs become Paths, so that a local tree is one
    thing whatever its spelling. An unknown scheme is a ``ValueError``.
    """
    text = str(text)
    if not is_url(text):
        return Path(text)
    scheme = text.split("://", 1)[0].lower()
    if scheme in LOCAL_SCHEMES:
        from fsspec.implementations.local import LocalFileSystem

        return Path(LocalFileSystem._strip_protocol(text))
    from fsspec.registry import known_implementations, registry

    if scheme not in known_implementations and scheme not in registry:
        raise ValueError(f"unknown URL scheme {scheme}:// in {text}")
    return text.rstrip("/") if not text.endswith("://") else text


def is_url(loc: Location | str) -> bool:
    return isinstance(loc, str) and "://" in loc


def join(base: Location, rel: str) -> Location:
    """``base`` / ``rel`` where ``rel`` is a forward-slash relative path."""
    if isinstance(base, Path):
        return base / rel
    return f"{base.rstrip('/')}/{rel}"


def name(loc: Location) -> str:
    return loc.name if isinstance(loc, Path) else loc.rstrip("/").rsplit("/", 1)[-1]


def parent(loc: Location) -> Location:
    return loc.parent if isinstance(loc, Path) else loc.rstrip("/").rsplit("/", 1)[0]


def _fs(url: str) -> tuple[Any, str]:
    import fsspec  # only URLs need it

    return fsspec.core.url_to_fs(url)


def _is_object_store(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return any(p in OBJECT_STORES for p in protocols)


def _info_mtime(info: dict[str, Any]) -> float | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created", "modified"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    return None


@contextlib.contextmanager
def _reaching(loc: str) -> Iterator[None]:
    """Errors of a filesystem that could not be asked (network, credentials) as ``Unreachable``."""
    try:
        yield
    except (FileNotFoundError, ImportError, Unreachable):
        raise
    except Exception as exc:  # fsspec backends raise their own errors (botocore, aiohttp, ...)
        raise Unreachable(f"cannot reach {loc}: {exc or type(exc).__name__}") from exc


# what there is ---------------------------------------------------------------
def exists(loc: Location) -> bool:
    """Whether ``loc`` exists; ``Unreachable`` when its filesystem cannot be asked."""
    if isinstance(loc, Path):
        return loc.exists()
    with _reaching(loc):
        fs, path = _fs(loc)
        if "http" in _protocols(fs):  # strict: no network is an error, not "not found"
            return bool(fs.exists(path, strict=True))
        return bool(fs.exists(path))


def is_dir(loc: Location) -> bool:
    if isinstance(loc, Path):
        return loc.is_dir()
    with _reaching(loc):
        fs, path = _fs(loc)
        return bool(fs.isdir(path))


def _protocols(fs: Any) -> tuple[str, ...]:
    return tuple(fs.protocol) if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)


def canonical(loc: Location) -> Path | tuple[str, str]:
    """Where ``loc`` really is: a resolved local path, or (filesystem, normalised path) for a URL.

    Two spellings of one place (relative, symlinked, trailing slash, ``s3a://`` for ``s3://``)
    give the same value.
    """
    if isinstance(loc, Path):
        return Path(os.path.realpath(loc))
    fs, path = _fs(loc)
    return type(fs).__name__, path.rstrip("/")


def same(a: Location, b: Location) -> bool:
    return canonical(a) == canonical(b)


def inside(inner: Location, outer: Location) -> bool:
    """True when ``inner`` lies strictly under the folder ``outer``."""
    a, b = canonical(inner), canonical(outer)
    if isinstance(a, Path) and isinstance(b, Path):
        return b in a.parents
    if isinstance(a, tuple) and isinstance(b, tuple):
        return a[0] == b[0] and a[1].startswith(b[1] + "/")
    return False


def check_write(target: Location, root: Location, source: Location | None = None) -> None:
    """Raise ``Refused`` unless writing ``target`` stays inside the folder ``root`` (symlinks followed)
    and does not land on ``source`` itself."""
    if not isinstance(target, Path) or not isinstance(root, Path):
        return  # object stores and remote filesystems have no symlinks to follow
    real_root = Path(os.path.realpath(root))
    real_parent = Path(os.path.realpath(target.parent))
    if real_parent != real_root and real_root not in real_parent.parents:
        raise Refused(f"not written: {target} would land in {real_parent}, outside the output folder {root}")
    if source is not None and same(source, target):
        raise Refused(f"not written: {target} is the input file itself")


def mtime(loc: Location) -> float | None:
    """Modification time in seconds since the epoch, or None when ``loc`` does not exist."""
    try:
        if isinstance(loc, Path):
            return loc.stat().st_mtime
        fs, path = _fs(loc)
        return _info_mtime(fs.info(path))
    except FileNotFoundError:
        return None


@dataclass
class Listing:
    """What a walk passed over: hidden names, and folders it could not list (relative path, reason)."""

    hidden: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def list_files(root: Location, listing: Listing | None = None) -> Iterator[tuple[str, float | None]]:
    """Every file under ``root`` as (forward-slash path relative to root, mtime), hidden names skipped.

    Hidden names (a leading dot: ``.DS_Store``, macOS ``._x.jpg``, ``.git``) are not
    listed; ``listing`` counts them (a hidden folder once, locally; each object under a
    hidden name, for a URL) and records every local folder that could not be read.

    Local trees are walked with ``os.walk`` and give no time (stat it when needed); a URL
    prefix is listed in one recursive listing, whose entries carry their times, so a
    million objects cost a few thousand LIST calls and no HEAD.
    """
    listing = listing if listing is not None else Listing()
    if isinstance(root, Path):
        yield from _walk_local(root, listing)
        return
    with _reaching(root):
        fs, path = _fs(root)
        found = fs.find(path, detail=True) if fs.exists(path) else {}
    prefix = path.rstrip("/") + "/"
    for key, info in found.items():
        if info.get("type") == "directory" or not key.startswith(prefix):
            continue
        rel = key[len(prefix):]
        if any(part.startswith(".") for part in rel.split("/")):
            listing.hidden += 1
            continue
        yield rel, _info_mtime(info)


def _walk_local(root: Path, listing: Listing) -> Iterator[tuple[str, None]]:
    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or root)
        rel = where.relative_to(root).as_posix() if where != root and root in where.parents else str(where)
        listing.unreadable.append((rel, exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        listing.hidden += sum(1 for d in dirnames if d.startswith("."))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath).relative_to(root)
        for fname in filenames:
            if fname.startswith("."):
                listing.hidden += 1
            else:
                yield (base / fname).as_posix(), None


# reading ---------------------------------------------------------------------
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def read_bytes(loc: Location, limit: int | None = None) -> bytes:
    """The whole file; ``Refused`` for more than ``limit`` bytes or, locally, for anything but a regular file.

    A local file is opened without blocking (a FIFO would wait for a writer) and checked on
    the open descriptor, so a symlink to ``/dev/zero`` or a FIFO named ``x.jpg`` fails at
    once; at most ``limit + 1`` bytes are ever read.
    """
    if isinstance(loc, Path):
        return _read_local(loc, limit)
    fs, path = _fs(loc)
    if limit is None:
        return bytes(fs.cat_file(path))
    size = fs.info(path).get("size")
    if size is not None and size > limit:
        raise Refused(_too_large(size, limit))
    data = bytes(fs.cat_file(path, start=0, end=limit + 1))
    if len(data) > limit:
        raise Refused(_too_large(len(data), limit))
    return data


def _read_local(path: Path, limit: int | None) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "a special file")
            raise Refused(f"not a regular file ({kind})")
        if limit is not None and info.st_size > limit:
            raise Refused(_too_large(info.st_size, limit))
        os.set_blocking(fd, True)
        data = fh.read() if limit is None else _read_at_most(fh, limit + 1)
    if limit is not None and len(data) > limit:
        raise Refused(_too_large(len(data), limit))
    return data


def _read_at_most(fh: Any, count: int) -> bytes:
    chunks: list[bytes] = []
    while count > 0:
        chunk = fh.read(min(count, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    more = "at least " if size == limit + 1 else ""
    return f"{more}{size} bytes, over the limit of {limit} (--max-bytes)"


# writing ---------------------------------------------------------------------
@contextlib.contextmanager
def _temporary_beside(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomic(target: Location, data: bytes, source: Location | None = None) -> None:
    """Write ``data`` under ``target`` so that nothing partial is ever visible there.

    ``source`` (optional) is where the image came from: on an object store the new
    object takes its content type and user metadata.
    """
    if isinstance(target, Path):
        with _temporary_beside(target) as tmp, open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return
    fs, path = _fs(target)
    if _is_object_store(fs):
        fs.pipe_file(path, data, **_object_headers(fs, target, source))
        return
    parent_path, _, fname = path.rstrip("/").rpartition("/")
    tmp = f"{parent_path}/.{fname}.{os.getpid()}{TMP_SUFFIX}"
    with contextlib.suppress(FileExistsError):
        fs.makedirs(parent_path, exist_ok=True)
    try:
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if fs.exists(tmp):
                fs.rm_file(tmp)


def _object_headers(fs: Any, target: str, source: Location | None) -> dict[str, Any]:
    """Content type and user metadata for a new S3 object (the source's, where it is an object too)."""
    if "s3" not in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)):
        return {}
    headers: dict[str, Any] = {}
    if is_url(source):
        src_fs, src_path = _fs(str(source))
        if _is_object_store(src_fs) and "s3" in src_fs.protocol:
            with contextlib.suppress(OSError, KeyError):
                info = src_fs.info(src_path)
                if info.get("ContentType"):
                    headers["ContentType"] = info["ContentType"]
                meta = src_fs.metadata(src_path)
                if meta:
                    headers["Metadata"] = meta
    if "ContentType" not in headers:
        guessed = mimetypes.guess_type(name(target))[0]
        if guessed:
            headers["ContentType"] = guessed
    return headers


def sweep_temporaries(root: Location) -> int:
    """Remove temporaries left by a killed run under ``root``; returns how many."""
    if isinstance(root, Path):
        if not root.is_dir():
            return 0
        count = 0
        for tmp in root.rglob(f"*{TMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                count += 1
        return count
    fs, path = _fs(root)
    if _is_object_store(fs) or not fs.exists(path):
        return 0  # objects are put whole: there are no temporaries
    leftovers = [k for k in fs.find(path) if k.endswith(TMP_SUFFIX)]
    for key in leftovers:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(key)
    return len(leftovers)


def is_up_to_date(source: Location, target: Location) -> bool:
    """True when ``target`` exists and is at least as new as ``source`` (a finished earlier run)."""
    target_time = mtime(target)
    if target_time is None:
        return False
    source_time = mtime(source)
    return source_time is not None and target_time >= source_time
