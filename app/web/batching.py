"""Concurrent decode requests share one forward pass.

While one batch runs on a worker thread, requests that arrive queue up; when it finishes, they
all go in the next one. A lone request waits for nothing (one event-loop turn), so the slider of
a single user stays as fast as a plain route, and 32 clients cost a handful of forward passes
instead of 32. Decoding is batch-invariant (see `VAE.decode`), so a z gives the same bytes
whatever it was batched with.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

import torch
from starlette.concurrency import run_in_threadpool

from app import imaging, inference
from app.checkpoints.served import ServedModel


@dataclass
class _Job:
    ckpt: ServedModel
    z: torch.Tensor  # (D,)
    label: int | None
    scale: int
    future: asyncio.Future[bytes]


@dataclass
class DecodeBatcher:
    max_batch: int = 64
    forward_passes: int = 0  # how many batches ran (the tests read it; so could a metrics page)
    images: int = 0
    _queue: list[_Job] = field(default_factory=list)
    _draining: bool = False

    async def decode_png(
        self, ckpt: ServedModel, z: torch.Tensor, label: int | None, scale: int
    ) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(ckpt, z, label, scale, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    results = await run_in_threadpool(self._run, batch)
                except Exception as e:  # noqa: BLE001 - every waiter must hear of it
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                for job, png in zip(batch, results, strict=True):
                    if not job.future.done():  # the client may have gone away
                        job.future.set_result(png)
        finally:
            self._draining = False

    def _run(self, batch: list[_Job]) -> list[bytes]:
        groups: dict[tuple[int, int | None], list[int]] = defaultdict(list)
        for i, job in enumerate(batch):
            groups[(id(job.ckpt), job.label)].append(i)
        out: list[bytes] = [b""] * len(batch)
        for members in groups.values():
            first = batch[members[0]]
            z = torch.stack([batch[i].z for i in members])  # (B, D)
            images = inference.decode_latents(first.ckpt, z, first.label)
            self.forward_passes += 1
            self.images += len(members)
            for i, image in zip(members, images, strict=True):
                out[i] = imaging.png_bytes(image, batch[i].scale)
        return out
