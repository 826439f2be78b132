"""Images for ``log_image``: any common image value as an H x W x 3 ``uint8`` array, bounding boxes checked and
drawn on it with their label and probability, and PNG encoding.

Accepted images: torch tensors and numpy arrays, ``H x W``, ``C x H x W`` or ``H x W x C`` with C = 1, 3 or 4
(when both readings fit, e.g. 3 x 3 x 3, the first axis is taken as channels, as torch and Visdom do), float
values in [0, 1] or integers in [0, 255] (bools as black/white); and PIL images. An alpha channel is dropped.

Boxes are dicts in pixel coordinates of the image (x to the right, y down), as lavd takes them::

    {'xStart': 4, 'yStart': 2, 'xEnd': 20, 'yEnd': 12, 'className': 'cat', 'probability': 0.93}

``className`` (optional) is a name from ``classes`` or an index into it (any name when no ``classes`` are given);
``probability`` (optional) is in [0, 1]. Each class has its own colour (:data:`PALETTE`, by its index in
``classes``, or by its order of appearance).
"""

from __future__ import annotations

import io
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flexlogger.errors import FlexLoggerError, short_repr
from flexlogger.experiment.checks import finite_number, unwrap_scalar
from flexlogger.sinks.visdom.legible import upscale_factor

__all__ = ["BOX_KEYS", "PALETTE", "Box", "ImageInputError", "check_boxes", "draw_boxes", "png_bytes", "to_rgb"]

BOX_KEYS = ("xStart", "yStart", "xEnd", "yEnd", "className", "probability")
COORDS = BOX_KEYS[:4]
# distinct, readable on dark and light images (Tableau 10)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
LINE_WIDTH = 2


class ImageInputError(FlexLoggerError, ValueError):
    """``log_image`` got an image or boxes it cannot use (the message names the argument, what was expected and
    what came)."""


Box = dict[str, Any]
_NUMPY_FLOATS = {"torch.float16", "torch.float32", "torch.float64"}


def to_rgb(call: str, image: Any, arg: str = "image") -> np.ndarray:
    """``image`` as an H x W x 3 ``uint8`` array (see the module docstring for what is accepted).

    Raises:
        ImageInputError: not an image type, a shape that is no image, non-finite or out-of-range values.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with visdom
        Image = None  # type: ignore[assignment]  # noqa: N806
    if Image is not None and isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor, on any device
        tensor = image.detach().cpu()
        if tensor.is_floating_point() and str(tensor.dtype) not in _NUMPY_FLOATS:
            tensor = tensor.float()  # bfloat16, float8: numpy has no such dtype
        array = tensor.numpy()
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise ImageInputError(f"{call}: expected `{arg}` to be a torch tensor, a numpy array or a PIL image, but "
                              f"got {type(image).__name__} {short_repr(image, 80)}")
    shape = tuple(array.shape)
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.ndim == 3 and shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    elif not (array.ndim == 3 and shape[-1] in (1, 3, 4)):
        raise ImageInputError(f"{call}: expected `{arg}` to be H x W, C x H x W or H x W x C with C = 1, 3 or 4, "
                              f"but got an array of shape {shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageInputError(f"{call}: expected `{arg}` to have at least one pixel, but got shape {shape}")
    array = _as_uint8(call, arg, array)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


def _as_uint8(call: str, arg: str, array: np.ndarray) -> np.ndarray:
    """Bools as black and white, integers in [0, 255] as they are, floats in [0, 1] scaled to [0, 255]."""
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.uint8) * 255
    if kind in "iu":
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise ImageInputError(f"{call}: expected the integer values of `{arg}` to be in [0, 255], but got values "
                                  f"from {lo} to {hi}")
        return array.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(array).all():
            raise ImageInputError(f"{call}: expected the values of `{arg}` to be finite, but got NaN or Inf")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise ImageInputError(f"{call}: expected the float values of `{arg}` to be in [0, 1] (or an image of "
                                  f"integers in [0, 255]), but got values from {low:g} to {high:g}")
        return np.rint(array.astype(np.float64) * 255).astype(np.uint8)
    raise ImageInputError(f"{call}: expected `{arg}` to hold numbers (float, int or bool), but got dtype "
                          f"{array.dtype}")


def check_boxes(call: str, boxes: Any, classes: Any, threshold: Any, width: int, height: int
                ) -> tuple[list[Box], list[Box], list[str] | None]:
    """Check ``boxes`` against the image size and ``classes``; split them by ``threshold``.

    Returns:
        ``(shown, left_out, classes)``: the boxes at or above the threshold (coordinates as floats, ``className``
        as a name), the boxes below it, and the class names.

    Raises:
        ImageInputError: a box that is not a dict of :data:`BOX_KEYS`, a missing or non-numeric coordinate, a box
            outside the image or with its end before its start, an unknown class, a probability or threshold
            outside [0, 1].
    """
    names: list[str] | None = None
    if classes is not None:
        if isinstance(classes, str) or not isinstance(classes, Sequence) or not all(
                isinstance(c, str) and c for c in classes):
            raise ImageInputError(f"{call}: expected `classes` to be a list of class names (non-empty strings), but "
                                  f"got {type(classes).__name__} {short_repr(classes, 80)}")
        names = list(classes)
    if threshold is not None and not _is_probability(threshold):
        raise ImageInputError(f"{call}: expected `threshold` to be a number in [0, 1] or None, but got "
                              f"{short_repr(threshold, 60)}")
    if boxes is None:
        return [], [], names
    if isinstance(boxes, (str, Mapping)) or not isinstance(boxes, Sequence):
        raise ImageInputError(f"{call}: expected `boxes` to be a list of dicts with keys {', '.join(BOX_KEYS)}, but "
                              f"got {type(boxes).__name__} {short_repr(boxes, 80)}")
    shown: list[Box] = []
    left_out: list[Box] = []
    for i, raw in enumerate(boxes):
        box = _check_box(call, i, raw, names, width, height)
        p = box.get("probability")
        (left_out if threshold is not None and p is not None and p < threshold else shown).append(box)
    return shown, left_out, names


def _is_probability(value: Any) -> bool:
    return finite_number(value) and 0.0 <= float(value) <= 1.0


def _check_box(call: str, i: int, raw: Any, names: list[str] | None, width: int, height: int) -> Box:
    where = f"boxes[{i}]"
    if not isinstance(raw, Mapping):
        raise ImageInputError(f"{call}: expected `{where}` to be a dict with keys {', '.join(BOX_KEYS)}, but got "
                              f"{type(raw).__name__} {short_repr(raw, 80)}")
    unknown = [k for k in raw if k not in BOX_KEYS]
    if unknown:
        raise ImageInputError(f"{call}: unknown key(s) {', '.join(map(repr, unknown))} in `{where}`; valid keys: "
                              f"{', '.join(BOX_KEYS)}")
    box: Box = {}
    for key in COORDS:
        value = unwrap_scalar(raw.get(key))
        if value is None:
            raise ImageInputError(f"{call}: expected `{where}` to have {key!r} (keys {', '.join(COORDS)} are "
                                  f"required), but it has {', '.join(map(repr, raw)) or 'no keys'}")
        if not finite_number(value):
            raise ImageInputError(f"{call}: expected `{where}['{key}']` to be a finite number of pixels, but got "
                                  f"{type(value).__name__} {short_repr(value, 40)}")
        box[key] = float(value)
    if not (0 <= box["xStart"] <= box["xEnd"] <= width and 0 <= box["yStart"] <= box["yEnd"] <= height):
        raise ImageInputError(
            f"{call}: expected `{where}` to lie inside the {width} x {height} image with xStart <= xEnd and "
            f"yStart <= yEnd (0 <= x <= {width}, 0 <= y <= {height}), but got x {box['xStart']:g}..{box['xEnd']:g}"
            f", y {box['yStart']:g}..{box['yEnd']:g}")
    if raw.get("className") is not None:
        box["className"] = _class_name(call, where, raw["className"], names)
    if raw.get("probability") is not None:
        p = unwrap_scalar(raw["probability"])
        if not _is_probability(p):
            raise ImageInputError(f"{call}: expected `{where}['probability']` to be a number in [0, 1], but got "
                                  f"{short_repr(p, 40)}")
        box["probability"] = float(p)
    return box


def _class_name(call: str, where: str, value: Any, names: list[str] | None) -> str:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if names is None or not 0 <= int(value) < len(names):
            valid = f"an index from 0 to {len(names) - 1}" if names else "a name (no `classes` were given)"
            raise ImageInputError(f"{call}: expected `{where}['className']` to be a class name or {valid}, but got "
                                  f"{int(value)}")
        return names[int(value)]
    if not isinstance(value, str) or not value:
        raise ImageInputError(f"{call}: expected `{where}['className']` to be a class name (str) or an index into "
                              f"`classes`, but got {type(value).__name__} {short_repr(value, 40)}")
    if names is not None and value not in names:
        raise ImageInputError(f"{call}: unknown class {value!r} in `{where}['className']`; valid classes: "
                              f"{', '.join(names)}")
    return value


def colour(name: str | None, names: Sequence[str]) -> tuple[int, int, int]:
    """The colour of class ``name``: by its index in ``names`` (the palette repeats after 10 classes)."""
    return PALETTE[list(names).index(name) % len(PALETTE)] if name is not None and name in names else PALETTE[0]


def label(box: Box) -> str:
    """``cat 0.93``, ``cat``, ``0.93`` or nothing."""
    parts = [box["className"]] if "className" in box else []
    if "probability" in box:
        parts.append(f"{box['probability']:.2f}")
    return " ".join(parts)


def draw_boxes(rgb: np.ndarray, boxes: Sequence[Box], classes: Sequence[str] | None = None) -> np.ndarray:
    """A copy of ``rgb`` with each box drawn: a :data:`LINE_WIDTH`-pixel outline in its class's colour, on the
    box's edge and inside it, and its label (class and probability) on a filled tag above the box's top-left corner
    (inside the box when there is no room above). An image under 256 pixels is first scaled up by a whole factor
    (``upscale_factor``: each pixel a sharp square), so that the labels can be read."""
    from PIL import Image, ImageDraw, ImageFont

    order = list(classes) if classes is not None else []
    for box in boxes:
        if "className" in box and box["className"] not in order:
            order.append(box["className"])
    scale = upscale_factor(*rgb.shape[:2])  # labels drawn on a 32 px image could not be read: scale it up first
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1) if scale > 1 else rgb
    image = Image.fromarray(rgb, "RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    height, width = rgb.shape[:2]
    for box in boxes:
        fill = colour(box.get("className"), order)
        x0, y0 = math.floor(box["xStart"] * scale), math.floor(box["yStart"] * scale)
        x1 = min(math.ceil(box["xEnd"] * scale) - 1, width - 1)
        y1 = min(math.ceil(box["yEnd"] * scale) - 1, height - 1)
        draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=fill, width=LINE_WIDTH)
        text = label(box)
        if text:
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            w, h = right - left + 2, bottom - top + 2
            ty = y0 - h if y0 - h >= 0 else y0
            draw.rectangle([x0, ty, x0 + w, ty + h], fill=fill)
            draw.text((x0 + 1 - left, ty + 1 - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(image, dtype=np.uint8).copy()


def png_bytes(rgb: np.ndarray) -> bytes:
    """An H x W x 3 ``uint8`` array as PNG file contents."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="PNG")
    return out.getvalue()
