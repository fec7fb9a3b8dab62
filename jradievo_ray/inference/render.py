"""What both backends do to a request before generating: the VLM's own chat template
around the prompt (an image placeholder first), and the image read from its file."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def chat_prompt(processor, text: str) -> str:
    """`text` as one user turn with an image, rendered by the folder's chat template."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def read_image(path: Path) -> Image.Image:
    """The image, fully read (the file is closed afterwards)."""
    with Image.open(path) as im:
        return im.copy()
