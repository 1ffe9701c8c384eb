"""Training throughput (images / s) of ERM, MixUp and AdaMixUp per precision, on synthetic tensors.

PreAct-ResNet-18 at 32×32 (batch 128) and the re-ID ResNet-50 (last stride 1, BNNeck) at 256×128
(batch 64 = 16 identities × 4 images). Speed only: the tensors are random. Writes
benchmarks/results/gpu_throughput_<device>.md.

    python benchmarks/gpu_throughput.py --device cuda          # on a GPU: inside 5 minutes
    python benchmarks/gpu_throughput.py --device cpu           # CPU mode: small batches, fp32 and bf16
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from adamixup import ERM, AdaMixUp, MixUp
from adamixup.models import build_model
from timing import device_name, time_methods

METHODS = {
    "ERM": lambda m: ERM(),
    "MixUp": lambda m: MixUp(),
    "AdaMixUp (defaults)": lambda m: AdaMixUp(m),
    "AdaMixUp (paper's settings)": lambda m: AdaMixUp.paper(m),
    "AdaMixUp (light π)": lambda m: AdaMixUp(m, policy="light"),
}


def setups(cpu: bool):
    # name, builder, input shape, classes, batch
    yield ("PreAct-ResNet-18 32×32", lambda: build_model("preact_resnet18", in_channels=3, num_classes=10),
           (3, 32, 32), 10, 16 if cpu else 128)
    yield ("re-ID ResNet-50 256×128", lambda: build_model("reid_resnet50", num_classes=751),
           (3, 256, 128), 751, 8 if cpu else 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default=None, help="comma list of fp32, bf16, fp16 (default: all on GPU, fp32,bf16 on CPU)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    precisions = (args.precisions or ("fp32,bf16" if cpu else "fp32,bf16,fp16")).split(",")
    steps = args.steps or (2 if cpu else 10)
    repeats = args.repeats or (2 if cpu else 3)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32
    out = Path(args.out or Path(__file__).parent / "results" / f"gpu_throughput_{device.type}.md")
    lines = [
        f"# Training throughput on {device.type} ({device_name(device)})",
        "",
        f"torch {torch.__version__}; synthetic tensors; channels-last; step = mixer + backward + SGD; median of",
        f"{repeats} blocks of {steps} steps, methods round-robin. AdaMixUp's images/s counts the B images of the batch",
        "(its backbone also reads the B/2 mixes). TF32 off: fp32 is true fp32.",
        f"Command: `python benchmarks/gpu_throughput.py --device {args.device}`",
        "",
    ]
    for name, build, shape, classes, batch in setups(cpu):
        torch.manual_seed(0)
        x = torch.rand(batch, *shape, device=device)
        y = torch.randint(0, classes, (batch,), device=device)
        table = [f"## {name}, batch {batch}", "", "| method | " + " | ".join(f"{p} img/s" for p in precisions) + " | × MixUp (fp32) |",
                 "|---|" + "---:|" * (len(precisions) + 1)]
        res = {p: time_methods(build, METHODS, x, y, steps, repeats, p, channels_last=not cpu) for p in precisions}
        for label in METHODS:
            ratio = res[precisions[0]][label] / res[precisions[0]]["MixUp"]
            table.append(f"| {label} | " + " | ".join(f"{batch / res[p][label]:.0f}" for p in precisions) + f" | {ratio:.2f} |")
        print("\n".join(table), flush=True)
        lines += table + [""]
        if device.type == "cuda":
            lines.append(f"Peak GPU memory so far: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
            lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
