"""Which normalization and padding variant suit the packaged ImageNet weights (models/weights.py):
a linear probe on frozen pooled features, side by side in one run.

    python benchmarks/linear_probe.py --data-root ../shared/data/cifar10-jpeg      # a few minutes on 2 cores

CIFAR-10 images (the image-folder layout) upsampled to 96×96; per draw, 100 training and 50 test
images per class drawn by seed from the training and test folders; a logistic regression
(scikit-learn, on standardized features) fit on the training features and scored on the test ones.
Variants: timm's ``efficientnet_lite0`` (PyTorch padding) and ``tf_efficientnet_lite0`` (TF "same"
padding) with the package's weights, inputs normalized with mean = std = 0.5 or with ImageNet's
mean and std; and the network at random initialization. Writes ``benchmarks/results/linear_probe.md``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adamixup.models.weights import HALF, load_imagenet

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def draw(root: Path, split: str, per_class: int, seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
    images, labels = [], []
    for i, c in enumerate(classes):
        files = sorted((root / split / c).glob("*.jpg"))
        for f in rng.choice(files, per_class, replace=False):
            images.append(np.asarray(Image.open(f).convert("RGB")))
            labels.append(i)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return F.interpolate(x, size=96, mode="bilinear", align_corners=False), np.array(labels)


@torch.no_grad()
def features(model, x, mean, std, batch=100):
    mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return torch.cat([model((x[i:i + batch] - mean) / std) for i in range(0, len(x), batch)]).numpy()


def probe(train_f, train_y, test_f, test_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    clf.fit(train_f, train_y)
    return float((clf.predict(test_f) == test_y).mean())


def main() -> None:
    import timm

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/cifar10-jpeg")
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "linear_probe.md"))
    args = p.parse_args()
    root = Path(args.data_root)
    if not (root / "train").is_dir():
        raise SystemExit(f"linear_probe: no image folder at {root} (train/<class>/*.jpg); pass --data-root")
    torch.manual_seed(0)
    models = {}
    for arch in ("efficientnet_lite0", "tf_efficientnet_lite0"):
        m = timm.create_model(arch, num_classes=0).eval()
        load_imagenet(m, arch)  # the same file: the two variants differ only in padding
        models[arch] = m
    models["random init"] = timm.create_model("efficientnet_lite0", num_classes=0).eval()
    variants = [("efficientnet_lite0", "0.5 / 0.5", HALF, HALF), ("efficientnet_lite0", "ImageNet", *IMAGENET),
                ("tf_efficientnet_lite0", "0.5 / 0.5", HALF, HALF), ("tf_efficientnet_lite0", "ImageNet", *IMAGENET),
                ("random init", "0.5 / 0.5", HALF, HALF)]
    scores = {v[:2]: [] for v in variants}
    start = time.perf_counter()
    for d in range(args.draws):
        xtr, ytr = draw(root, "train", 100, seed=d)
        xte, yte = draw(root, "test", 50, seed=1000 + d)
        for arch, norm, mean, std in variants:
            acc = probe(features(models[arch], xtr, mean, std), ytr, features(models[arch], xte, mean, std), yte)
            scores[(arch, norm)].append(acc)
            print(f"draw {d}: {arch}, {norm}: {acc:.3f}", flush=True)
    lines = ["# Linear probe of the packaged ImageNet weights (EfficientNet-Lite0)", "",
             f"Command: `python benchmarks/linear_probe.py --data-root {args.data_root} --draws {args.draws}`; "
             f"{time.perf_counter() - start:.0f} s on {torch.get_num_threads()} threads.", "",
             "CIFAR-10 JPEG images upsampled to 96×96; per draw 1,000 training (100 per class) and 500 test images "
             "(50 per class), drawn by seed; frozen pooled features, logistic regression (C = 0.1) on standardized "
             "features. Accuracy on the test images, mean ± std over the draws (the same images for every variant "
             "of a draw).", "",
             "| network | input normalization | accuracy | per draw |", "|---|---|---:|---|"]
    for (arch, norm), accs in scores.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        lines.append(f"| {arch} | {norm} | {statistics.fmean(accs):.3f} ± {sd:.3f} | {', '.join(f'{a:.3f}' for a in accs)} |")
    base = scores[("efficientnet_lite0", "0.5 / 0.5")]
    paired = {k: [a - b for a, b in zip(v, base)] for k, v in scores.items() if k != ("efficientnet_lite0", "0.5 / 0.5")}
    lines += ["", "Paired differences against efficientnet_lite0 with 0.5 / 0.5, per draw:", ""]
    lines += [f"- {arch}, {norm}: " + ", ".join(f"{d:+.3f}" for d in ds) for (arch, norm), ds in paired.items()]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
