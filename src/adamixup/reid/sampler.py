"""PK sampling for metric learning (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss", 2017):
every batch holds P identities with K images each, so that each anchor of a batch-hard triplet loss
has K-1 positives and (P-1)·K negatives in its batch."""
from __future__ import annotations

from typing import Dict, Iterator, List, Sequence

import numpy as np
from torch.utils.data import Sampler


class PKBatchSampler(Sampler[List[int]]):
    """Batches of ``p`` distinct identities × ``k`` images, for ``DataLoader(batch_sampler=...)``.

    pids:         the person id of every dataset item (the training split's ``pids``).
    p, k:         identities per batch and images per identity (the strong baseline: 16 × 4).
    seed:         the run seed; epoch ``e`` draws from a generator seeded with ``(seed, e)``, so a
                  resumed run replays the same batches. Call :meth:`set_epoch` before each epoch.
    num_replicas: distributed world size; ``rank``: this process. The identities are shuffled
                  and dealt out to the ranks, so ranks see disjoint identities within an epoch;
                  every rank yields the same number of batches (the smallest rank's), as
                  DistributedDataParallel needs.

    An epoch, per rank: each identity's images are shuffled and cut into groups of ``k`` (an
    identity with fewer than ``k`` images gives one group drawn with replacement; a remainder
    smaller than ``k`` is left out this epoch); then batches take one group from each of ``p``
    identities chosen at random among those with groups left, until fewer than ``p`` remain.
    Each image is thus seen at most once per epoch (bar identities with fewer than ``k`` images).
    """

    def __init__(self, pids: Sequence[int], p: int = 16, k: int = 4, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if p < 1 or k < 1:
            raise ValueError(f"PK sampling needs p >= 1 identities and k >= 1 images per identity, got p={p}, k={k}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1} for num_replicas={num_replicas}")
        pids = np.asarray(pids, dtype=np.int64).reshape(-1)
        if pids.size == 0:
            raise ValueError("PK sampling got an empty list of pids")
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0
        order = np.argsort(pids, kind="stable")
        self.identities, starts = np.unique(pids[order], return_index=True)
        self.index_lists = np.split(order, starts[1:])  # dataset indices of each identity
        if len(self.identities) < self.p * self.num_replicas:
            raise ValueError(
                f"PK sampling with p={self.p} over {self.num_replicas} rank(s) needs at least "
                f"{self.p * self.num_replicas} identities, the data has {len(self.identities)}"
            )
        self._cache: Dict[int, List[List[int]]] = {}

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = int(epoch)

    def _rank_batches(self, positions: np.ndarray, rng: np.random.Generator) -> List[List[int]]:
        """Batches over the identities at ``positions`` of ``self.identities``."""
        groups: List[List[np.ndarray]] = []
        for i in positions:
            idx = self.index_lists[i]
            if len(idx) < self.k:
                groups.append([rng.choice(idx, size=self.k, replace=True)])
            else:
                idx = rng.permutation(idx)
                n = len(idx) // self.k
                groups.append([idx[j * self.k:(j + 1) * self.k] for j in range(n)])
        available = [j for j, g in enumerate(groups) if g]
        batches = []
        while len(available) >= self.p:
            chosen = rng.choice(len(available), size=self.p, replace=False)
            picked = [available[c] for c in chosen]
            batches.append(np.concatenate([groups[j].pop() for j in picked]).tolist())
            if any(not groups[j] for j in picked):
                available = [j for j in available if groups[j]]
        return batches

    def epoch_batches(self, epoch: int) -> List[List[int]]:
        """This rank's batches of ``epoch`` (dataset indices), computed once and cached."""
        if epoch not in self._cache:
            rng = np.random.default_rng([self.seed, epoch])
            # positions into self.identities, dealt out to the ranks
            shuffled = rng.permutation(len(self.identities))
            per_rank = [
                self._rank_batches(shuffled[r::self.num_replicas], np.random.default_rng([self.seed, epoch, r]))
                for r in range(self.num_replicas)
            ]
            n = min(len(b) for b in per_rank)
            self._cache = {epoch: per_rank[self.rank][:n]}  # keep only the latest epoch
        return self._cache[epoch]

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.epoch_batches(self.epoch))

    def __len__(self) -> int:
        return len(self.epoch_batches(self.epoch))
