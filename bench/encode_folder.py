"""How fast a data set is encoded once and kept (app.encodings), against the model alone.

    (a) 10,000 64×64 colour PNGs (colour scenes drawn by app.data.shapes3d) encoded from their
        folder by checkpoints/shapes-beta-vae, against the same images as tensors in memory
        through the same model and batch size (μ, log σ², KL, −log p(x|z=μ) either way), in one
        loop and on 2 threads; the folder with every batch in the main thread, on 1 and 2
        threads each reading and encoding whole batches, and as the default chooses (timed)
    (b) Fashion-MNIST's 60,000 train images through checkpoints/fashion-vae, as 28×28 grey PNGs
        in a folder, and the built-in set (all 70,000, from Debian's idx files)
    (c) with --many: peak memory (VmHWM of a fresh process) while 200,000 tiny PNG files are
        encoded, beside a process that only loads the same model

Prints figures, asserts nothing. Timings are medians of --repeats runs, in-memory and folder runs
interleaved, each folder run into a fresh cache folder and everything counted (the key, reading,
the part files, the merge). Each line says how much CPU other processes on this machine used
meanwhile and how much time the hypervisor stole: figures taken while either is large are
disturbed.

    .venv/bin/python bench/encode_folder.py [--repeats 3] [--batch 64] [--many]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.checkpoints import ServedModel, load_checkpoint  # noqa: E402
from app.data.sets import ImageSet, open_set  # noqa: E402
from app.encodings import RunSettings, encode_batch, encode_set  # noqa: E402
from app.inference import prepare_for_serving  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


class Disturbance:
    """CPU seconds other processes used, and seconds stolen by the hypervisor, over a span."""

    def __init__(self) -> None:
        self.others = self.steal = 0.0

    @staticmethod
    def _now() -> tuple[float, float, float]:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(v) - v[3] - v[4] - v[7]) / TICK  # all but idle, iowait and steal
        own = sum(
            getattr(resource.getrusage(who), f)
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            for f in ("ru_utime", "ru_stime")
        )
        return busy, own, v[7] / TICK

    def timed(self, run: Callable[[], object]) -> float:
        busy, own, steal = self._now()
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        busy2, own2, steal2 = self._now()
        self.others += max(0.0, (busy2 - busy) - (own2 - own))
        self.steal += steal2 - steal
        return seconds

    def __str__(self) -> str:
        return f"others used {self.others:.1f} CPU s, {self.steal:.1f} s stolen"


def load(name: str) -> ServedModel:
    return prepare_for_serving(load_checkpoint(ROOT / "checkpoints" / name).served())


def drawn_folder(folder: Path, source: ImageSet, indices: np.ndarray, channels: int,
                 size: int) -> None:  # fmt: skip
    """The set's images `indices`, fitted, as PNG files 000000.png, 000001.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    fitting = source.fitting_for(channels, size)
    for b in range(0, len(indices), 1000):
        x, _ = source.fitted(indices[b : b + 1000], fitting)
        for i, image in enumerate(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)):
            pixels = image[0] if channels == 1 else image.transpose(1, 2, 0)
            Image.fromarray(pixels).save(folder / f"{b + i:06d}.png")


def in_memory(served: ServedModel, x: np.ndarray, batch: int) -> None:
    for b in range(0, len(x), batch):
        encode_batch(served.model, x[b : b + batch])


def in_memory_on_threads(served: ServedModel, x: np.ndarray, batch: int, threads: int) -> None:
    """The batches shared out to `threads` threads, each with one torch thread: what the folder
    runs do by default on the CPU."""
    share = max(1, torch.get_num_threads() // threads)
    with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(share,)) as pool:
        list(pool.map(lambda b: encode_batch(served.model, x[b : b + batch]),
                      range(0, len(x), batch)))  # fmt: skip


def from_set(served: ServedModel, data: ImageSet, settings: RunSettings, work: Path) -> None:
    cache = Path(tempfile.mkdtemp(dir=work, prefix="cache-"))
    encode_set(served, data, cache, settings=settings)
    shutil.rmtree(cache)


def runs(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.2f} s of {', '.join(f'{s:.2f}' for s in seconds)}"


def colour_scenes(args: argparse.Namespace, work: Path) -> None:
    n, batch = args.colour, args.batch
    served = load("shapes-beta-vae")
    folder = work / "colour"
    chosen = np.sort(np.random.default_rng(0).choice(480_000, n, replace=False))
    drawn_folder(folder, open_set("shapes3d"), chosen, 3, 64)
    data = open_set(folder)
    fitting = data.fitting_for(3, 64)
    x = np.concatenate([data.fitted(np.arange(b, min(b + 1000, n)), fitting)[0]
                        for b in range(0, n, 1000)])  # fmt: skip
    ways = {
        "from the folder, every batch in the main thread": RunSettings(batch, workers=0),
        "from the folder, batches on 1 thread": RunSettings(batch, workers=1),
        "from the folder, batches on 2 threads": RunSettings(batch, workers=2),
        "from the folder, as chosen (the default)": RunSettings(batch),
    }
    print(f"(a) {n:,} 64×64 colour PNGs ({sum(f.stat().st_size for f in folder.iterdir()) >> 20}"
          f" MiB), shapes-beta-vae, batch {batch}")  # fmt: skip
    seen = Disturbance()
    in_memory(served, x[:512], batch)  # warm: the first calls allocate
    memories = {
        f"tensors in memory, one loop ({torch.get_num_threads()} torch threads)":
            lambda: in_memory(served, x, batch),
        "tensors in memory, batches on 2 threads":
            lambda: in_memory_on_threads(served, x, batch, 2),
    }  # fmt: skip
    memory: dict[str, list[float]] = {way: [] for way in memories}
    folder_s: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(args.repeats):
        for way, run in memories.items():
            memory[way].append(seen.timed(run))
        for way, settings in ways.items():
            folder_s[way].append(seen.timed(lambda s=settings: from_set(served, data, s, work)))
    for way, seconds in memory.items():
        print(f"    {way:47s} {n / statistics.median(seconds):6,.0f} images/s   ({runs(seconds)})")
    m = min(statistics.median(seconds) for seconds in memory.values())  # the faster of the two
    for way, seconds in folder_s.items():
        f = statistics.median(seconds)
        print(f"    {way:47s} {n / f:6,.0f} images/s   ratio {m / f:.2f}   ({runs(seconds)})")
    print(f"    target: ratio ≥ 0.7 of the faster in memory; meanwhile {seen}")


def fashion(args: argparse.Namespace, work: Path) -> None:
    served = load("fashion-vae")
    built_in = open_set("fashion-mnist")
    train = built_in.split_indices("train")
    folder = work / "fashion-train"
    drawn_folder(folder, built_in, train, 1, 28)
    settings = RunSettings(args.batch)
    seen = Disturbance()
    print(f"(b) Fashion-MNIST through fashion-vae, batch {args.batch}, threads as the default "
          "chooses")  # fmt: skip
    for label, data in ((f"{len(train):,} train images as PNG files", open_set(folder)),
                        (f"the built-in set, all {len(built_in):,}", built_in)):  # fmt: skip
        seconds = [seen.timed(lambda d=data: from_set(served, d, settings, work))
                   for _ in range(args.repeats)]  # fmt: skip
        s = statistics.median(seconds)
        print(f"    {label:44s} {len(data) / s:6,.0f} images/s   ({runs(seconds)})")
    print(f"    target: the 60,000 in < 30 s; meanwhile {seen}")


MANY_CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from app.checkpoints import load_checkpoint
from app.inference import prepare_for_serving
served = prepare_for_serving(load_checkpoint(Path({root!r}) / "checkpoints" / {model!r}).served())
if {folder!r}:
    from app.data.sets import open_set
    from app.encodings import RunSettings, encode_set
    t = time.perf_counter()
    data = open_set({folder!r})
    listed = time.perf_counter() - t
    enc = encode_set(served, data, Path({cache!r}), settings=RunSettings({batch}))
    seconds = time.perf_counter() - t
    print(f"listed in {{listed:.1f}} s, {{len(enc):,}} encoded in {{seconds:.0f}} s")
# VmHWM: this program's peak resident memory (ru_maxrss would carry the parent's over exec)
status = Path("/proc/self/status").read_text().splitlines()
peak = next(line for line in status if line.startswith("VmHWM"))
print(f"peak RSS {{int(peak.split()[1]) / 1024:.0f}} MiB")
"""


def many(args: argparse.Namespace, work: Path) -> None:
    n = args.many_files
    folder = work / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    print(f"(c) {n:,} 16×16 PNG files in one folder (written in {time.perf_counter() - start:.0f} "
          "s), shapes-beta-vae fitting each to 64×64, each in a fresh process")  # fmt: skip
    seen = Disturbance()
    for label, target in (
        ("the model loaded, nothing encoded", ""),
        ("encoding them", str(folder)),
    ):
        code = MANY_CHILD.format(root=str(ROOT), model="shapes-beta-vae", folder=target,
                                 cache=str(work / "cache-many"), batch=args.batch)  # fmt: skip
        seen.timed(lambda c=code, lab=label: print_child(lab, c))
    print(f"    meanwhile {seen}")


def print_child(label: str, code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = (done.stdout + done.stderr).strip().splitlines()
    print(f"    {label:44s} {'; '.join(lines[-2:])}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--colour", type=int, default=10_000, help="(a): how many PNGs")
    p.add_argument("--skip", nargs="*", default=[], choices=["colour", "fashion"])
    p.add_argument("--many", action="store_true", help="(c): 200,000 files, a few minutes")
    p.add_argument("--many-files", type=int, default=200_000)
    args = p.parse_args()
    import torch

    print(f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="encode-bench-") as tmp:
        work = Path(tmp)
        if "colour" not in args.skip:
            colour_scenes(args, work)
        if "fashion" not in args.skip:
            fashion(args, work)
        if args.many:
            many(args, work)


if __name__ == "__main__":
    main()
