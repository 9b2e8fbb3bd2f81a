"""``benco predict``: masks and overlays for real-life images of any size."""

import json
from pathlib import Path
from typing import Dict, List, Optional

import albumentations as albu
import numpy as np
import torch
import torch.nn.functional as F
from albumentations.pytorch import ToTensorV2
from IMDLBenCo.transforms import get_albu_transforms
from PIL import Image, UnidentifiedImageError

from ..checkpoints import best_checkpoint, load_weights
from ..config import Parser
from ..errors import UsageError
from ..runtime import build_model, setup, single_process
from ..terminal import command_log, say, track, warn
from . import flags

NAME = "predict"
SUMMARY = "masks and overlays for your own images"
TAKES_CONFIG = True

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"}


def parser() -> Parser:
    p = Parser(prog="benco predict", description="Predicted masks and overlays for images of any size.")
    flags.common(p)
    flags.verbose(p, "predict.log in --out")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    flags.checkpoint(p, "a checkpoint file, or a training folder (its best epoch)")
    p.add_argument("--out", default="predictions", help="output folder")
    p.add_argument("--threshold", default=0.5, type=float, help="mask threshold of the overlay")
    p.add_argument(
        "--full_resolution",
        action="store_true",
        help="predict at the image's own size (padded to a multiple of 32) instead of --image_size",
    )
    return p


def collect_images(inputs: List[str]) -> List[Path]:
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{item}: no such file or folder")
    if not files:
        raise UsageError(f"no image ({', '.join(sorted(IMAGE_SUFFIXES))}) in {' '.join(inputs)}")
    return files


def preprocessing(args) -> albu.Compose:
    """The datasets' own resize (IMDL-BenCo's get_albu_transforms), or padding to a multiple of 32."""
    if not args.full_resolution:
        return get_albu_transforms(type_="resize", output_size=(args.image_size, args.image_size))
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # the values IMDL-BenCo's transforms use

    return albu.Compose(
        [
            albu.PadIfNeeded(
                min_height=None,
                min_width=None,
                pad_height_divisor=32,
                pad_width_divisor=32,
                border_mode=0,
                value=0,
                position="top_left",
            ),
            albu.Normalize(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD),
            ToTensorV2(),
        ]
    )


def overlay(image: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """Tampered pixels tinted red, half transparent."""
    tampered = (probability > threshold)[..., None]
    red = np.array([255, 0, 0], dtype=np.float32)
    blended = np.where(tampered, 0.5 * image + 0.5 * red, image.astype(np.float32))
    return blended.round().astype(np.uint8)


def predict(args, model_args, model_class, files: Optional[List[Path]] = None) -> Dict[str, Dict]:
    """Masks and overlays of ``files`` (default: the images of ``args.inputs``)."""
    files = files if files is not None else collect_images(args.inputs)
    device = setup(args)
    single_process(args, NAME)
    checkpoint = best_checkpoint(args.checkpoint)
    model, unwrapped = build_model(model_class, args, model_args, device)
    load_weights(unwrapped, checkpoint, args.trust_checkpoint)
    model.eval()
    transform = preprocessing(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, failed = {}, []
    for file in track(files, "predicting", unit="img"):
        try:
            with Image.open(file) as handle:
                image = np.asarray(handle.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            failed.append(f"{file}: {err}")
            continue
        height, width = image.shape[:2]
        tensor = transform(image=image)["image"].unsqueeze(0).to(device)
        batch = {
            "image": tensor,
            "mask": torch.zeros_like(tensor[:, :1]),
            "label": torch.zeros(1, dtype=torch.long, device=device),
        }
        with torch.no_grad():
            output = model(**batch)
        probability = output["pred_mask"].float()
        if args.full_resolution:
            probability = probability[..., :height, :width]
        else:
            probability = F.interpolate(probability, size=(height, width), mode="bilinear", align_corners=False)
        probability = probability[0, 0].clamp(0, 1).cpu().numpy()
        stem = (
            file.stem
            if file.stem not in {Path(r["mask"]).stem[:-5] for r in results.values()}
            else f"{file.stem}_{len(results)}"
        )
        mask_path, overlay_path = out / f"{stem}_mask.png", out / f"{stem}_overlay.png"
        Image.fromarray((probability * 255).round().astype(np.uint8)).save(mask_path)
        Image.fromarray(overlay(image, probability, args.threshold)).save(overlay_path)
        results[str(file)] = {
            "mask": str(mask_path),
            "overlay": str(overlay_path),
            "score": float(probability.max()),
            "tampered_fraction": float((probability > args.threshold).mean()),
        }
    (out / "predictions.json").write_text(json.dumps(results, indent=2))
    say(f"Wrote {2 * len(results)} PNGs and predictions.json to {out} (checkpoint {checkpoint})")
    for line in failed:
        warn(f"skipped unreadable image {line}")
    return results


def main(argv: List[str]) -> int:
    args, model_args, model_class = flags.parse_command(parser(), argv, from_checkpoint=True)
    files = collect_images(args.inputs)  # a wrong input is named before the output folder is written
    with command_log(args.out, NAME, args.verbose):
        predict(args, model_args, model_class, files)
    return 0
