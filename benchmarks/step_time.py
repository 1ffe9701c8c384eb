"""Per-step wall time of ERM, MixUp and AdaMixUp variants, side by side in one process, as ratios to MixUp.

    python benchmarks/step_time.py                 # the three models on the CPU: several minutes on 2 cores
    python benchmarks/step_time.py --device cuda --steps 20 --repeats 5
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from adamixup.models import build_model
from timing import METHODS, device_name, time_methods

SETUPS = {  # model -> (input shape, classes, batch size of the paper's recipes)
    "small_cnn": ((1, 28, 28), 10, 128),
    "authors_cnn": ((1, 28, 28), 10, 128),
    "preact_resnet18": ((3, 32, 32), 10, 128),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(SETUPS))
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks per method")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "step_time.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    lines = [
        "# Step time: ERM, MixUp, AdaMixUp",
        "",
        f"Device: {device.type} ({device_name(device)}); torch {torch.__version__}; fp32. One step = mixer call +",
        f"backward + SGD update; median of {args.repeats} blocks of {args.steps} steps per method, round-robin in one process.",
        f"Command: `python benchmarks/step_time.py --device {args.device} --steps {args.steps} --repeats {args.repeats}`",
        "",
        "Targets (issue 2, set for the paper's settings): AdaMixUp with the paper's π ≤ 2.0× MixUp; with a light π ≤ 1.5×.",
        "",
    ]
    for name in args.models.split(","):
        shape, classes, batch = SETUPS[name]
        torch.manual_seed(0)
        x = torch.rand(batch, *shape, device=device)
        y = torch.randint(0, classes, (batch,), device=device)
        res = time_methods(lambda: build_model(name, in_channels=shape[0], num_classes=classes), METHODS, x, y,
                           args.steps, args.repeats)
        base = res["MixUp"]
        table = [f"## {name}, batch {batch}", "", "| method | ms / step | × MixUp |", "|---|---:|---:|"]
        table += [f"| {label} | {t * 1e3:.1f} | {t / base:.2f} |" for label, t in res.items()]
        print("\n".join(table), flush=True)
        lines += table + [""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
