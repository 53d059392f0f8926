"""One scrub for every format: the unblurred copies of the picture that metadata can carry.

An EXIF block can hold a thumbnail (IFD1) and previews (maker notes); an XMP packet can hold whole
images in base64 (GImage:Data, GDepth:Data, xmpGImg:image ...), in its main packet or in JPEG's
extended XMP; other blocks (Photoshop resources) can hold preview JPEGs. ``Scrub`` takes each block a
writer is about to write and returns it without them: thumbnails and previews are redrawn in place from
the blurred picture (zeroed when a redrawn one does not fit), XMP images are removed. Every format
plugin, and the generic Pillow writer, sends its metadata through one ``Scrub``; its ``notes`` say what
was changed.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from ._exif import redraw_previews, replace_previews, scrub_exif
from ._signatures import image_spans
from ._xmp import blank_bare_images, strip_images

# Pillow ``info`` keys a writer may pass back to Pillow: kept as they are, or scrubbed on the way
_PLAIN_KEYS = ("icc_profile", "dpi")


class Scrub:
    """Scrubs the metadata blocks of one output file; replacements are drawn from ``picture``."""

    def __init__(self, picture: Image.Image) -> None:
        self._picture = picture
        self.notes: list[str] = []

    @property
    def picture(self) -> Image.Image:
        """The blurred picture in 8-bit RGB (converted once, when first needed)."""
        if self._picture.mode != "RGB":
            from . import _to_rgb8

            self._picture = _to_rgb8(self._picture)
        return self._picture

    def exif(self, block: bytes) -> bytes:
        """An EXIF block (with or without the "Exif\\0\\0" header), thumbnail and previews redrawn."""
        block, notes = scrub_exif(block, self.picture)
        self.notes.extend(notes)
        return self._blank_base64(block, "the EXIF")  # in place: the EXIF's offsets stay right

    def xmp(self, packet: bytes | str, where: str = "XMP") -> bytes:
        """An XMP packet without the images embedded in it; the rest byte for byte."""
        raw = packet.encode("utf-8") if isinstance(packet, str) else packet
        stripped, removed = strip_images(raw)
        if removed:
            self.notes.append(f"image(s) embedded in the {where} removed: {', '.join(removed)}")
        if b"\xff\xd8\xff" in stripped or image_spans(stripped):  # an image file put raw into the text
            stripped, jpegs, others = replace_previews(stripped, lambda old, size: None)
            if jpegs + others:
                self.notes.append(f"{jpegs + others} image file(s) inside the {where} zeroed")
        return stripped

    def previews(self, block: bytes) -> bytes:
        """Any other metadata block (Photoshop resources ...), preview JPEGs in it redrawn in place."""
        block, notes = redraw_previews(block, self.picture)
        self.notes.extend(notes)
        return self._blank_base64(block, "metadata")

    def _blank_base64(self, block: bytes, where: str) -> bytes:
        """``block`` with base64 image data outside XML properties blanked in place, noted."""
        block, count = blank_bare_images(block)
        if count:
            self.notes.append(f"{count} base64 image(s) in {where} blanked")
        return block

    def pillow_options(self, info: dict[str, Any], keys: tuple[str, ...] = ("icc_profile", "exif", "xmp")) -> (
            dict[str, Any]):
        """Pillow save options carrying ``info``'s metadata (those of ``keys`` present), scrubbed."""
        options: dict[str, Any] = {}
        for key in keys:
            value = info.get(key)
            if not value:
                continue
            if key == "exif":
                options[key] = self.exif(value if isinstance(value, bytes) else bytes(value))
            elif key == "xmp":
                options[key] = self.xmp(value)
            elif key in _PLAIN_KEYS:
                options[key] = value
        return options
