"""Pictures for people: photo|truth|prediction panels, error overlays, and a captioned contact sheet."""

import numpy as np
from PIL import Image, ImageDraw

GREEN = np.array([0, 200, 70])  # predicted car, and right
RED = np.array([235, 40, 40])  # predicted car, but background
BLUE = np.array([40, 110, 255])  # car that was missed


def grey(mask: np.ndarray) -> np.ndarray:
    return np.repeat(mask[..., None] * 255, 3, axis=2).astype(np.uint8)


def panels(images: np.ndarray, truths: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """One row per sample: photo | true mask | predicted mask."""
    rows = [
        np.concatenate([image, grey(truth), grey(pred)], axis=1) for image, truth, pred in zip(images, truths, preds)
    ]
    return np.concatenate(rows, axis=0)


def overlay(photo: np.ndarray, pred: np.ndarray, truth: np.ndarray | None = None, alpha: float = 0.45) -> np.ndarray:
    """Tint the prediction over the photo; with a truth mask, errors show red (false car) and blue (missed)."""
    tint = np.zeros_like(photo)
    tinted = pred.astype(bool)
    tint[tinted] = GREEN
    if truth is not None:
        truth = truth.astype(bool)
        tint[tinted & ~truth] = RED
        tint[~tinted & truth] = BLUE
        tinted = tinted | truth
    out = photo.copy()
    out[tinted] = ((1 - alpha) * photo[tinted] + alpha * tint[tinted]).astype(np.uint8)
    return out


def resize_to_width(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] <= width:
        return image
    height = round(image.shape[0] * width / image.shape[1])
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def contact_sheet(
    tiles: list[tuple[np.ndarray, str]], columns: int = 4, tile_width: int = 480, empty: str = "no images"
) -> Image.Image:
    """A grid of images, each captioned (e.g. its id and dice) in a bar above it; without images, the caption
    `empty` alone."""
    caption_height = 22
    if not tiles:
        sheet = Image.new("RGB", (tile_width, caption_height), "white")
        ImageDraw.Draw(sheet).text((6, 5), empty, fill="black")
        return sheet
    tiles = [(resize_to_width(image, tile_width), caption) for image, caption in tiles]
    cell_h = max(image.shape[0] for image, _ in tiles) + caption_height
    cell_w = max(image.shape[1] for image, _ in tiles)
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (cell_w * min(columns, len(tiles)), cell_h * rows), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (image, caption) in enumerate(tiles):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        draw.text((x + 6, y + 5), caption, fill="black")
        sheet.paste(Image.fromarray(image), (x, y + caption_height))
    return sheet
