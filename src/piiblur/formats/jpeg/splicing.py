"""Splicing the input's metadata segments into the new stream: byte for byte, in their order, scrubbed.

Every APPn and COM segment of the original header is put back in place of those the encoder wrote (the
encoder's Adobe APP14 wins: it describes the colour transform actually used). The EXIF thumbnail,
Photoshop and maker-note previews are redrawn in place (``formats._scrub``); images embedded in XMP are
removed, the extended XMP re-split with a new GUID; MPO secondary frames (with the MPF index), FlashPix
previews and anything after the first image are removed.
"""

from __future__ import annotations

import re

from piiblur.formats._exif import EXIF_HEADER, dangling_jpeg_starts
from piiblur.formats._scrub import Scrub
from piiblur.formats._signatures import image_spans
from piiblur.formats._xmp import EXTENDED_SIGNATURE, XMP_SIGNATURE, bare_images, extended_guid, gather, split, with_guid
from piiblur.formats.jpeg import jumbf
from piiblur.formats.jpeg.markers import (
    Marker,
    header_segments,
    image_end,
    is_adobe,
    is_app_or_com,
    is_frame,
    payload,
    with_payload,
)


def extended_xmp(segments: list[tuple[int, bytes]]) -> tuple[dict[str, bytes], list[str]]:
    """The extended XMP packets of a JPEG's header segments by GUID, and the GUIDs of incomplete ones."""
    return gather([payload(seg) for marker, seg in segments
                   if marker == Marker.APP1 and payload(seg).startswith(EXTENDED_SIGNATURE)])


# A motion photo's video follows the JPEG's end, which a written file never carries: its XMP must no longer
# announce one (a viewer would take the JPEG's own last bytes for the video). GCamera:MicroVideo is the
# older name.
_MOTION_FLAG = rb"GCamera:(?:MotionPhoto|MicroVideo)"
_MOTION_PHOTO = re.compile(rb"(" + _MOTION_FLAG + rb"""\s*=\s*["']\s*|<""" + _MOTION_FLAG + rb">\s*)1")


def _no_motion_photo(body: bytes, notes: list[str]) -> bytes:
    stilled, count = _MOTION_PHOTO.subn(rb"\g<1>0", body)
    if count:
        notes.append("motion photo: its video after the JPEG's end is not carried over, and the XMP says so "
                     "(GCamera:MotionPhoto 0)")
    return stilled


def _strip_xmp_images(old_segments: list[tuple[int, bytes]], scrub: Scrub) -> list[tuple[int, bytes]]:
    """Remove images embedded in the main and extended XMP; the rest of both stays byte for byte.

    An incomplete extended XMP (its chunks do not make up the length they claim) is removed whole."""
    packets, incomplete = extended_xmp(old_segments)
    replaced: dict[str, list[bytes]] = {}
    new_guids: dict[str, str] = {guid: "" for guid in incomplete}
    for guid in incomplete:
        scrub.notes.append(f"extended XMP {guid} removed: incomplete (its chunks do not hold the length it claims)")
    for guid, packet in packets.items():
        stripped = scrub.xmp(packet, "extended XMP")
        if stripped != packet:
            new_guids[guid], payloads = split(stripped)
            replaced[guid] = [with_payload(Marker.APP1, p) for p in payloads]
    result: list[tuple[int, bytes]] = []
    for marker, seg in old_segments:
        content = payload(seg)
        if marker == Marker.APP1 and content.startswith(XMP_SIGNATURE):
            original = content[len(XMP_SIGNATURE):]
            body = _no_motion_photo(scrub.xmp(original), scrub.notes)
            guid = extended_guid(body)
            if new_guids.get(guid):
                body = with_guid(body, new_guids[guid])
            if body != original:
                seg = with_payload(marker, XMP_SIGNATURE + body)
        elif marker == Marker.APP1 and content.startswith(EXTENDED_SIGNATURE):
            guid = content[len(EXTENDED_SIGNATURE):len(EXTENDED_SIGNATURE) + 32].decode("latin-1").upper()
            if guid in replaced:
                for new_seg in replaced.pop(guid):  # all new segments in place of the first old one
                    result.append((marker, new_seg))
                continue
            if guid in new_guids:
                continue
        result.append((marker, seg))
    return result


def splice(source_data: bytes, fresh: bytes, scrub: Scrub, mode: str, frames: int) -> tuple[bytes, list[str]]:
    """The freshly encoded stream ``fresh`` (of a picture in ``mode``) with the input's metadata segments
    back, and notes on what was changed. ``frames``: how many the input has (an MPO's others are dropped)."""
    notes: list[str] = []
    new_segments, new_sos = header_segments(fresh)
    encoder_adobe = [seg for marker, seg in new_segments if is_adobe(marker, seg)]
    old_segments = _strip_xmp_images(header_segments(source_data)[0], scrub)
    kept, late, had_mpf = _kept_segments(old_segments, encoder_adobe, scrub, mode == "RGB", notes)
    kept.extend(encoder_adobe)  # CMYK output without an Adobe segment in the input
    notes.extend(scrub.notes)
    others = [seg for marker, seg in new_segments if not is_app_or_com(marker)]
    data = b"\xff\xd8" + b"".join(kept) + b"".join(others) + b"".join(late) + fresh[new_sos:]
    if had_mpf:
        notes.append(f"MPO: {max(frames - 1, 1)} secondary frame(s) and the MPF index removed, not blurred "
                     f"(a second viewpoint or preview need not show the faces where the first frame does)")
    else:
        tail = source_data[image_end(source_data):]
        if tail.strip(b"\x00"):
            notes.append(f"{len(tail)} bytes after the end of the image (appended data) removed")
    return data, notes


def _kept_segments(old_segments: list[tuple[int, bytes]], encoder_adobe: list[bytes], scrub: Scrub, rgb: bool,
                   notes: list[str]) -> tuple[list[bytes], list[bytes], bool]:
    """The input's APPn and COM segments, scrubbed: those before its frame header (SOF), those after it
    (they stay after it), and whether it had an MPF index (dropped)."""
    kept: list[bytes] = []
    late: list[bytes] = []
    after_sof = had_mpf = False
    # FlashPix (FPXR) segments can carry a preview split over several segments: it cannot be redrawn, so drop
    fpxr = [seg for marker, seg in old_segments if marker == Marker.APP2 and payload(seg).startswith(b"FPXR")]
    drop_fpxr = any(b"\xff\xd8\xff" in seg for seg in fpxr)
    if drop_fpxr:
        notes.append("FlashPix (FPXR) segments holding a preview image removed")
    # a JUMBF box (C2PA content credentials) holding an image (a thumbnail, perhaps split over segments): its
    # segments are dropped, as it cannot be redrawn in place across them (and a C2PA claim no longer holds
    # for a changed picture anyway)
    jumbf_images = {number for number, box in jumbf.boxes(old_segments).items()
                    if b"\xff\xd8\xff" in box or image_spans(box) or bare_images(box)}
    if jumbf_images:
        notes.append(f"{len(jumbf_images)} JUMBF box(es) (APP11: C2PA content credentials) holding an image removed")
    continued: set[tuple[int, bytes]] = set()  # kinds of segment in which a JPEG began and did not end
    for marker, segment in old_segments:
        after_sof = after_sof or is_frame(marker)
        dropped = (drop_fpxr and segment in fpxr) or jumbf.instance(marker, segment) in jumbf_images
        if not is_app_or_com(marker) or dropped:
            continue
        if _kind(marker, segment) in continued:  # the rest of that JPEG, split over segments of its kind
            notes.append(f"APP{marker - Marker.APP0} segment continuing a JPEG split over segments removed"
                         if marker != Marker.COM else "comment continuing a JPEG split over segments removed")
            continue
        if not (marker == Marker.APP1 and payload(segment).startswith((EXIF_HEADER, XMP_SIGNATURE,
                                                                        EXTENDED_SIGNATURE))) \
                and dangling_jpeg_starts(payload(segment)):
            continued.add(_kind(marker, segment))  # this one is zeroed from the JPEG's start by the scrub
        if marker == Marker.APP2 and payload(segment).startswith(b"MPF\x00"):
            had_mpf = True
            continue
        if is_adobe(marker, segment) and encoder_adobe:
            kept.append(encoder_adobe.pop())
            continue
        if is_adobe(marker, segment) and len(segment) >= 16 and segment[15] == 0 and rgb:
            notes.append("Adobe APP14 dropped (it declared RGB storage; the new file is YCbCr)")
            continue
        if marker == Marker.APP0 and payload(segment).startswith((b"JFIF\x00", b"JFXX\x00")):
            thumbless = _without_jfif_thumbnail(segment)
            if thumbless != segment:
                notes.append("JFIF thumbnail removed" if thumbless else "JFXX thumbnail segment removed")
            if not thumbless:
                continue
            segment = thumbless
        elif marker == Marker.APP1 and payload(segment).startswith(EXIF_HEADER):
            segment = with_payload(marker, scrub.exif(payload(segment)))
        else:  # e.g. the Photoshop thumbnail resource in APP13; an image file put into a comment
            segment = with_payload(marker, scrub.previews(payload(segment)))
        (late if after_sof else kept).append(segment)
    return kept, late, had_mpf


def _kind(marker: int, segment: bytes) -> tuple[int, bytes]:
    """A segment's marker and its identifier (the printable name ending in a NUL that most APPn
    payloads begin with, such as "Photoshop 3.0"; empty when there is none)."""
    name, nul, _ = payload(segment)[:32].partition(b"\x00")
    plain = nul and len(name) >= 2 and all(0x20 <= c < 0x7F for c in name)
    return marker, name if plain else b""


def _without_jfif_thumbnail(segment: bytes) -> bytes:
    """A JFIF APP0 segment with its thumbnail (raw pixels of the unblurred picture) taken out; b"" for a
    JFXX segment, which holds nothing but a thumbnail."""
    body = payload(segment)
    if body.startswith(b"JFXX\x00"):
        return b""
    if len(body) >= 14 and (body[12] or body[13] or len(body) > 14):
        return with_payload(Marker.APP0, body[:12] + b"\x00\x00")
    return segment
