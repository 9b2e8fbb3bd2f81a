"""``benco predict``: masks and overlays for real-life images of any size."""

import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import albumentations as albu
import numpy as np
import torch
import torch.nn.functional as F
from albumentations.pytorch import ToTensorV2
from IMDLBenCo.transforms import get_albu_transforms
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from ncl_plugin.commands import flags
from ncl_plugin.config import Parser
from ncl_plugin.data import augmentations
from ncl_plugin.engine import amp
from ncl_plugin.engine.checkpoints import best_checkpoint, load_weights
from ncl_plugin.engine.runtime import build_model, setup, single_process
from ncl_plugin.engine.thresholds import chosen_for
from ncl_plugin.errors import RunError, UsageError
from ncl_plugin.terminal import command_log, say, track, warn

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
    p.add_argument(
        "--threshold",
        default=None,
        type=float,
        help="pixel threshold of the overlays and tampered fractions (default: the one `benco calibrate` chose on a "
        "validation list for this checkpoint, else IMDL-BenCo's 0.5)",
    )
    p.add_argument(
        "--full_resolution",
        action="store_true",
        help="predict at the image's own size (padded to a multiple of 32) instead of --image_size",
    )
    p.add_argument(
        "--max_side",
        default=2048,
        type=int,
        help="--full_resolution: an image longer than this (pixels) is predicted at this size, its mask scaled back "
        "(bounded memory; default %(default)s)",
    )
    return p


# Folders of masks inside a dataset folder (IMDL-BenCo's Gt/, CASIA's ground truth): not photographs to predict on.
MASK_FOLDERS = {"gt", "groundtruth", "ground_truth", "mask", "masks"}
RESULTS = "predictions.json"
# Every mask and overlay this command writes carries this mark (a PNG text chunk, a JPEG comment), so that a
# later run passes over it wherever it lies; the outputs an earlier version wrote are known by its RESULTS.
MARK = "benco-predict"
OUTPUTS = ("_mask.png", "_overlay.jpg")


def written_by_predict(file: Path) -> bool:
    """Whether ``file`` is a mask or overlay that `benco predict` wrote (its mark; the header alone is read)."""
    try:
        with Image.open(file) as handle:
            comment = handle.info.get("comment", b"")
            return handle.info.get(MARK) is not None or (
                isinstance(comment, bytes) and comment.startswith(MARK.encode())
            )
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False  # unreadable: predict says so when it comes to it


def recorded_outputs(folder: Path) -> Set[Path]:
    """The masks and overlays that the RESULTS files below ``folder`` list (runs that wrote no mark).
    A run recorded its outputs as given to it, relative to wherever it ran: they are matched by the
    longest tail of their path that exists below the RESULTS file's folder."""
    found = set()
    for record in folder.rglob(RESULTS):
        try:
            entries = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(entries, dict):
            continue
        base = record.parent.resolve()
        for entry in entries.values():
            for key in ("mask", "overlay"):
                parts = Path(str(entry.get(key, "")) if isinstance(entry, dict) else "").parts
                for start in range(len(parts)):
                    candidate = base.joinpath(*parts[start:])
                    if candidate.is_file():
                        found.add(candidate)
                        break
    return found


def collect_images(inputs: List[str]) -> List[Tuple[Path, Path]]:
    """(image, its name below --out) for every image of ``inputs``, each file once; a folder's images keep their
    subfolders. Passed over, and said: masks below a folder (files in a Gt/, mask(s)/ or *groundtruth folder),
    and every mask and overlay that this command wrote, in this run's --out or any other."""
    found, seen, passed = [], set(), {"masks": 0, "outputs": 0}

    def take(file: Path, relative: Path, recorded: Set[Path]) -> None:
        resolved = file.resolve()
        if resolved in recorded or written_by_predict(file):
            passed["outputs"] += 1
        elif resolved not in seen:
            seen.add(resolved)
            found.append((file, relative))

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            recorded = recorded_outputs(path)
            for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                relative = file.relative_to(path)
                if any(part.lower().replace(" ", "_") in MASK_FOLDERS for part in relative.parent.parts):
                    passed["masks"] += 1
                else:
                    take(file, relative, recorded)
        elif path.is_file():
            take(path, Path(path.name), set())
        else:
            raise UsageError(f"{item}: no such file or folder")
    if passed["masks"]:
        say(f"passed over {passed['masks']} mask(s) in Gt/ or mask folders below {' '.join(inputs)}")
    if passed["outputs"]:
        say(f"passed over {passed['outputs']} mask(s) and overlay(s) that benco predict wrote: not photographs")
    if not found:
        raise UsageError(f"no image ({', '.join(sorted(IMAGE_SUFFIXES))}) in {' '.join(inputs)}")
    return found


def output_stems(names: List[Path], out: Path) -> List[str]:
    """One output stem per input name, none shared: a name keeps its own stem (a/b.jpg -> a/b) unless an
    earlier input took it (a.jpg and a.png, or two folders' a.jpg) or a file the user has is in the way;
    then <stem>_2, _3, ..., never another input's own stem. Compared without case, for the file systems
    that ignore it."""
    own = [name.with_suffix("").as_posix() for name in names]
    reserved, used, stems = {stem.lower() for stem in own}, set(), []
    for stem in own:
        candidate, n = stem, 1
        while (
            candidate.lower() in used
            or (candidate != stem and candidate.lower() in reserved)
            or any((out / f"{candidate}{end}").exists() for end in OUTPUTS)
        ):
            n += 1
            candidate = f"{stem}_{n}"
        used.add(candidate.lower())
        stems.append(candidate)
    return stems


def refuse_earlier_predictions(out: Path) -> None:
    """Predictions are never mixed: an --out that holds an earlier run's keeps them, untouched."""
    if (out / RESULTS).is_file():
        raise UsageError(
            f"--out {out} holds predictions of an earlier run ({RESULTS}); give another --out, or remove them"
        )


def preprocessing(args) -> albu.Compose:
    """The datasets' own resize (IMDL-BenCo's get_albu_transforms), or padding to a multiple of 32."""
    if not args.full_resolution:
        return get_albu_transforms(type_="resize", output_size=(args.image_size, args.image_size))
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # the values IMDL-BenCo's transforms use

    return albu.Compose(
        [
            augmentations.pad_to_multiple(32),
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


def decision_thresholds(given: Optional[float], checkpoint: str, score: Optional[str]) -> Tuple[float, Optional[float]]:
    """(pixel threshold, image threshold or None): --threshold if given, else the one `benco calibrate` chose on a
    validation list for this checkpoint, else 0.5; the image threshold chosen for the image score ``score`` in
    use, or none. Says which, once, with what the pixel threshold flags on authentic validation images."""
    chosen, image = chosen_for(checkpoint, score)
    if given is not None:
        say(f"pixel threshold {given:.2f} (--threshold); {flagged_at(chosen, given)}")
    elif chosen:
        given = chosen["pixel_threshold"]
        fpr = chosen.get("authentic_fpr")
        flags_authentic = (
            f"flags {fpr:.1%} of an authentic validation image's pixels"
            if fpr is not None
            else "chosen on tampered images alone: what it flags on authentic photographs is not known"
        )
        say(
            f"pixel threshold {given:.2f}, chosen by benco calibrate on {chosen.get('chosen_on')}: pixel F1 "
            f"{chosen['pixel_f1']:.3f} there ({chosen['pixel_f1_at_0.5']:.3f} at 0.5); it {flags_authentic}"
        )
    else:
        given = 0.5
        say(
            "pixel threshold 0.50 (IMDL-BenCo's): no threshold.json beside the checkpoint; `benco calibrate` chooses one"
        )
    if image is not None:
        which = f" (--image_score {score})" if score else ""
        say(
            f"image verdicts: 'tampered' above an image score{which} of {image:.4f}, chosen on {chosen.get('chosen_on')}"
        )
    return given, image


def flagged_at(chosen: Optional[Dict], threshold: float) -> str:
    """What ``threshold`` flags on the authentic validation images `benco calibrate` swept, in words."""
    curves = (chosen or {}).get("curves") or {}
    grid, rates = curves.get("threshold") or [], curves.get("authentic_fpr")
    if rates and round(threshold, 4) in grid:
        rate = rates[grid.index(round(threshold, 4))]
        return f"it flags {rate:.1%} of an authentic validation image's pixels"
    return "what it flags on authentic photographs was not measured (benco calibrate sweeps 0.01 to 0.99)"


def predict(args, model_args, model_class, files: Optional[List[Tuple[Path, Path]]] = None) -> Dict[str, Dict]:
    """Masks and overlays of ``files`` ((image, name below --out) pairs; default: the images of ``args.inputs``)."""
    out = Path(args.out)
    files = files if files is not None else collect_images(args.inputs)
    device = setup(args)
    single_process(args, NAME)
    checkpoint = best_checkpoint(args.checkpoint)
    model, unwrapped = build_model(model_class, args, model_args, device)
    load_weights(unwrapped, checkpoint, args.trust_checkpoint)
    model.eval()
    pixel_threshold, image_threshold = decision_thresholds(
        args.threshold, checkpoint, getattr(model_args, "image_score", None)
    )
    transform = preprocessing(args)
    out.mkdir(parents=True, exist_ok=True)
    results, failed, capped = {}, [], 0
    stems = dict(zip((file for file, _ in files), output_stems([name for _, name in files], out)))
    mark = PngInfo()
    mark.add_text(MARK, str(checkpoint))
    started = time.time()
    for file, _ in track(files, "predicting", unit="img"):
        try:
            with Image.open(file) as handle:
                image = np.asarray(handle.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            failed.append(f"{file}: {err}")
            continue
        height, width = image.shape[:2]
        seen = image
        if args.full_resolution and max(height, width) > args.max_side:
            # bounded memory: a 4000x3000 photograph at its own size took 5 GB
            scale = args.max_side / max(height, width)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            seen = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
            capped += 1
        tensor = transform(image=seen)["image"].unsqueeze(0).to(device)
        batch = {
            "image": tensor,
            "mask": torch.zeros_like(tensor[:, :1]),
            "label": torch.zeros(1, dtype=torch.long, device=device),
        }
        with torch.no_grad(), amp.running(model, device, args.precision):
            output = model(**batch)
        score = float(output["pred_label"].flatten()[0]) if output.get("pred_label") is not None else None
        probability = output["pred_mask"].float()
        if not bool(torch.isfinite(probability).all()):
            raise RunError(
                f"{file}: the model predicted NaN or infinite probabilities; the checkpoint's weights are probably "
                f"not finite ({checkpoint})"
            )
        if args.full_resolution:
            probability = probability[..., : seen.shape[0], : seen.shape[1]]
        probability = F.interpolate(probability, size=(height, width), mode="bilinear", align_corners=False)
        probability = probability[0, 0].clamp(0, 1).cpu().numpy()
        mask_path, overlay_path = (out / f"{stems[file]}{end}" for end in OUTPUTS)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((probability * 255).round().astype(np.uint8)).save(mask_path, pnginfo=mark)
        # JPEG: an overlay is for looking at; as PNG a 12-megapixel photograph's took 13 MB
        Image.fromarray(overlay(image, probability, pixel_threshold)).save(
            overlay_path, quality=90, comment=f"{MARK} {checkpoint}".encode()
        )
        score = float(probability.max()) if score is None else score
        results[str(file)] = {
            "mask": str(mask_path),
            "overlay": str(overlay_path),
            "score": score,
            "tampered_fraction": float((probability > pixel_threshold).mean()),
            "pixel_threshold": pixel_threshold,
        }
        if image_threshold is not None:
            results[str(file)]["verdict"] = "tampered" if score > image_threshold else "authentic"
            results[str(file)]["image_threshold"] = image_threshold
    took = time.time() - started
    (out / RESULTS).write_text(json.dumps(results, indent=2))
    each = f", {took / len(results):.2f} s an image" if results else ""
    say(
        f"Wrote {len(results)} masks, {len(results)} overlays and {RESULTS} to {out} in {took:.1f} s{each} (checkpoint {checkpoint})"
    )
    if capped:
        say(f"--full_resolution: {capped} image(s) longer than --max_side {args.max_side} were predicted at that size")
    for line in failed:
        warn(f"skipped unreadable image {line}")
    return results


def main(argv: List[str]) -> int:
    args, model_args, model_class = flags.parse_command(parser(), argv, from_checkpoint=True)
    refuse_earlier_predictions(Path(args.out))
    files = collect_images(args.inputs)  # a wrong input is named before the output folder is written
    chosen_for(best_checkpoint(args.checkpoint), getattr(model_args, "image_score", None))  # and a wrong score
    with command_log(args.out, NAME, args.verbose):
        predict(args, model_args, model_class, files)
    return 0
