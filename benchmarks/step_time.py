"""Per-step wall time of ERM, MixUp and AdaMixUp variants, side by side in one process.

A step = mixer call + backward + SGD update, on random tensors of the model's input size. Methods
run round-robin (one timed block of steps each, repeated) so that drifts of the machine hit them all
alike; the figure per method is the median over blocks, reported as a ratio to MixUp.

    python benchmarks/step_time.py                 # both models, CPU: a few minutes on 2 cores
    python benchmarks/step_time.py --device cuda --steps 20 --repeats 5
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from adamixup import ERM, AdaMixUp, MixUp
from adamixup.models import build_model

SETUPS = {  # model -> (input shape, classes, batch size of the paper's recipes)
    "small_cnn": ((1, 28, 28), 10, 128),
    "preact_resnet18": ((3, 32, 32), 10, 128),
}

METHODS = {
    "ERM": lambda m: ERM(),
    "MixUp": lambda m: MixUp(),
    "AdaMixUp (π = classifier copy, concat)": lambda m: AdaMixUp(m),
    "AdaMixUp (π = classifier copy, noisy_mean)": lambda m: AdaMixUp(m, input_mode="noisy_mean"),
    "AdaMixUp (light π, concat)": lambda m: AdaMixUp(m, policy="light"),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_model(name: str, device: torch.device, steps: int, repeats: int, batch: int | None) -> dict:
    shape, classes, default_batch = SETUPS[name]
    b = batch or default_batch
    torch.manual_seed(0)
    x = torch.rand(b, *shape, device=device)
    y = torch.randint(0, classes, (b,), device=device)
    runs = {}
    for label, make in METHODS.items():
        model = build_model(name, in_channels=shape[0], num_classes=classes).to(device)
        mixer = make(model).to(device)
        opt = torch.optim.SGD(list(model.parameters()) + list(mixer.parameters()), lr=0.01, momentum=0.9)
        runs[label] = (model, mixer, opt)

    def block(label: str, n: int) -> float:
        model, mixer, opt = runs[label]
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            out = mixer(model, x, y)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
        sync(device)
        return (time.perf_counter() - t0) / n

    for label in METHODS:  # warm-up: allocator, cudnn autotune, first-call overheads
        block(label, 2)
    times = {label: [] for label in METHODS}
    for _ in range(repeats):
        for label in METHODS:
            times[label].append(block(label, steps))
    return {label: statistics.median(t) for label, t in times.items()} | {"_batch": b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(SETUPS))
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks per method")
    parser.add_argument("--batch", type=int, default=None, help="override the recipes' batch size")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "step_time.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        hw = torch.cuda.get_device_name(device)
    else:
        hw = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"

    lines = [
        "# Step time: ERM, MixUp, AdaMixUp",
        "",
        f"Device: {device.type} ({hw}); torch {torch.__version__}. One step = mixer call + backward + SGD",
        f"update; median of {args.repeats} blocks of {args.steps} steps per method, run round-robin in one process.",
        "Command: `python benchmarks/" + Path(__file__).name + f" --device {args.device} --steps {args.steps} --repeats {args.repeats}`",
        "",
        "Targets (issue 2): AdaMixUp with the paper's π ≤ 2.0× MixUp; with a light π ≤ 1.5×.",
        "",
    ]
    for name in args.models.split(","):
        res = time_model(name, device, args.steps, args.repeats, args.batch)
        b = res.pop("_batch")
        base = res["MixUp"]
        lines += [f"## {name}, batch {b}", "", "| method | ms / step | × MixUp |", "|---|---:|---:|"]
        for label, t in res.items():
            lines.append(f"| {label} | {t * 1e3:.1f} | {t / base:.2f} |")
        lines.append("")
        print("\n".join(lines[-(len(res) + 4):]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
