"""Check a dataset in Kaggle layout before any stage trusts it: every photo has its mask and vice versa,
names follow <car>_<NN>, every file decodes, sizes match and masks are binary."""

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from carvana.core.errors import CarvanaError, list_some
from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import ID_RULE, IMAGE_DIR, IMAGE_ID, MASK_DIR, image_path, mask_path


def check_dataset(root: Path, source: str) -> list[str]:
    """Return the sorted image ids under root, or raise one CarvanaError listing every problem found."""
    images = {path.stem: path for path in (root / IMAGE_DIR).glob("*.jpg")}
    masks = {path.name.removesuffix("_mask.gif"): path for path in (root / MASK_DIR).glob("*_mask.gif")}
    if not images and not masks:
        raise CarvanaError(f"{source}: no {IMAGE_DIR}/*.jpg or {MASK_DIR}/*_mask.gif files found")
    problems = [f"{IMAGE_DIR}/{i}.jpg is not named {ID_RULE}" for i in sorted(images) if not IMAGE_ID.match(i)]
    problems += [f"{IMAGE_DIR}/{i}.jpg has no mask {MASK_DIR}/{i}_mask.gif" for i in sorted(images.keys() - masks)]
    problems += [f"{MASK_DIR}/{i}_mask.gif has no image {IMAGE_DIR}/{i}.jpg" for i in sorted(masks.keys() - images)]
    ids = sorted(images.keys() & masks.keys())
    with ProcessPoolExecutor(min(len(ids), os.cpu_count() or 1) or 1) as pool:
        problems += [p for p in pool.map(pair_problem, [root] * len(ids), ids, chunksize=8) if p]
    if problems:
        raise CarvanaError(
            f"{source}: {len(problems)} problem(s) in the dataset: {list_some(problems)}. "
            "Fix or remove these files (each photo needs a same-sized binary mask), then re-run."
        )
    return ids


def pair_problem(root: Path, image_id: str) -> str | None:
    """What is wrong with one photo/mask pair, or None."""
    try:
        photo = read_image(image_path(root, image_id))
        mask = read_mask(mask_path(root, image_id))
    except CarvanaError as error:
        return str(error).replace(f"{root}/", "")
    if photo.shape[:2] != mask.shape:
        (mask_h, mask_w), (photo_h, photo_w) = mask.shape, photo.shape[:2]
        return f"{MASK_DIR}/{image_id}_mask.gif is {mask_w}x{mask_h} but its image is {photo_w}x{photo_h}"
    return None
