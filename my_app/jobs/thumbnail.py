"""Checking uploaded images and making thumbnails of them (Pillow)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}
OUTPUT_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}


class UnsupportedImage(Exception):
    """Not an image, or not of a type we accept (415)."""


class InvalidImage(Exception):
    """An image we cannot use: corrupt, or too many pixels (422)."""


@dataclass(frozen=True)
class Thumbnail:
    """One rendered thumbnail."""

    size: int
    width: int
    height: int
    filename: str
    data: bytes


def check_image(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """Check that ``data`` is a whole JPEG, PNG, WebP or GIF of at most ``max_pixels``.

    Returns its format, width and height. Only the header is read before the pixel
    count is checked, so a decompression bomb is refused without being decoded; then
    the frame the thumbnails are made of is decoded in full, so a truncated or corrupt
    image is refused here (422) rather than failing in the worker (``verify`` alone
    decodes nothing of a JPEG or GIF).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format, (width, height) = image.format, image.size
                if image_format not in ACCEPTED_FORMATS:
                    raise UnsupportedImage(
                        f"{image_format} images are not accepted; send JPEG, PNG, WebP or GIF."
                    )
                if width * height > max_pixels:
                    raise InvalidImage(
                        f"The image has {width}x{height} pixels, more than the {max_pixels} "
                        "allowed."
                    )
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.seek(0)
                image.load()
    except UnidentifiedImageError:
        raise UnsupportedImage("The file is not an image; send JPEG, PNG, WebP or GIF.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage("The image has more pixels than allowed.") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImage(f"The image is corrupt: {error}") from None
    return image_format, width, height


def make_thumbnails(data: bytes, sizes: list[int], output: str) -> Iterator[Thumbnail]:
    """Yield a thumbnail of ``data`` fitting in sizexsize for each size, as ``output``."""
    pil_format = OUTPUT_FORMATS[output]
    with Image.open(io.BytesIO(data)) as original:
        original.seek(0)  # the first frame of an animation
        image = ImageOps.exif_transpose(original).convert("RGBA")
    for size in sizes:
        thumbnail = image.copy()
        thumbnail.thumbnail((size, size), Image.Resampling.LANCZOS)
        if pil_format == "JPEG":
            thumbnail = thumbnail.convert("RGB")
        buffer = io.BytesIO()
        thumbnail.save(buffer, pil_format)
        yield Thumbnail(
            size=size,
            width=thumbnail.width,
            height=thumbnail.height,
            filename=f"thumb-{size}.{output}",
            data=buffer.getvalue(),
        )
