"""Image paths of JSONL lines, resolved and checked when the file is read, so that a
missing or unreadable image stops a run before any model is built, naming file and line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from jradievo_ray.errors import UserError


def resolve_image(value: str, folder: Path, where: str, check: bool = True) -> Path:
    """`value` as a path: absolute, or relative to `folder` (the JSONL file's), or failing
    that to the working directory; with `check`, it must exist."""
    image = Path(value)
    if not image.is_absolute():
        beside = folder / image
        image = beside if beside.exists() or not image.exists() else image.absolute()
    if check and not image.is_file():
        raise UserError(f"{where}: image not found: {image}")
    return image


def check_readable(images: Iterable[tuple[str, Path]]) -> None:
    """UserError for the first (where, image) that PIL cannot open (only headers are
    read). Run after every line has been parsed, so a bad line is reported first."""
    for where, image in images:
        try:
            with Image.open(image) as im:
                im.size  # noqa: B018 - parsed from the header
        except UnidentifiedImageError:
            raise UserError(f"{where}: cannot read image {image}: not an image file") from None
        except OSError as exc:
            raise UserError(f"{where}: cannot read image {image}: {exc}") from None
