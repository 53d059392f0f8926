"""Real servers the tests start themselves: an S3-compatible one (moto) on loopback.

Import the fixture into a test module (``from servers import s3``); it starts once per module
that uses it, on a free port of 127.0.0.1, with fake credentials in the environment, so that
s3fs, boto3 and every process started from the tests (workers, Ray) reach it.
"""

from __future__ import annotations

import io
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from helpers import EXAMPLE, FACE_BOX, PLATE_BOX, detail
from PIL import Image

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3:
    endpoint: str
    client: Any  # a boto3 S3 client

    def bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """The keys under ``prefix``, less hidden ones (pii-blur's manifest in ``.pii-blur/``)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = (o["Key"] for page in pages for o in page.get("Contents", []))
        return sorted(k for k in keys if not any(part.startswith(".") for part in k.split("/")))

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _jpeg(pixels: np.ndarray, **kwargs: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90, **kwargs)
    return out.getvalue()


def put_tree(s3: S3, bucket: str, prefix: str, empty_scene: np.ndarray) -> dict[str, bytes]:
    """A portrait (face and plate), an empty scene, a broken JPEG, a text file and a hidden file."""
    exif = Image.Exif()
    exif[0x010F] = "pii-blur test camera"
    files = {
        "portrait.jpg": EXAMPLE.read_bytes(),
        "sub/deeper/empty.jpg": _jpeg(empty_scene, exif=exif),
        "sub/broken.jpg": EXAMPLE.read_bytes()[:2000],
        "notes.txt": b"not an image",
        ".hidden/x.jpg": EXAMPLE.read_bytes(),
    }
    for key, data in files.items():
        s3.client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data, ContentType="image/jpeg",
                             Metadata={"camera-run": "42"})
    return files


def check_blurred_tree(s3: S3, files: dict[str, bytes], bucket: str, prefix: str) -> None:
    assert s3.keys(bucket, prefix) == [f"{prefix}/portrait.jpg", f"{prefix}/sub/deeper/empty.jpg"]
    portrait = s3.get(bucket, f"{prefix}/portrait.jpg")
    before, after = Image.open(EXAMPLE), Image.open(io.BytesIO(portrait))
    for box in (FACE_BOX, PLATE_BOX):  # blurred where it must be
        assert detail(np.asarray(after), box) < 0.05 * detail(np.asarray(before), box)
    assert after.getexif().get_ifd(0x8825) == before.getexif().get_ifd(0x8825)  # GPS kept
    assert after.quantization == before.quantization
    empty_key = f"{prefix}/sub/deeper/empty.jpg"
    assert s3.get(bucket, empty_key) == files["sub/deeper/empty.jpg"]  # nothing found: the same bytes
    for key in (f"{prefix}/portrait.jpg", empty_key):  # the object's own metadata is kept too
        head = s3.client.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "image/jpeg" and head["Metadata"] == {"camera-run": "42"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    import boto3
    import fsspec

    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(ENV, AWS_ENDPOINT_URL=endpoint)
    fsspec.filesystem("s3").clear_instance_cache()  # no client made for another endpoint
    try:
        yield S3(endpoint, boto3.client("s3", endpoint_url=endpoint))
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
