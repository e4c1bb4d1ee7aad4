"""Serving benchmark: top-k recommendation or search latency and throughput, micro-batching on versus off.

    neo run bench_serving checkpoint=random            # random-weight tiny model over the demo world
    neo run bench_serving checkpoint=outputs/demo/instruct bench.clients=[1,8,32]
    neo run bench_serving checkpoint=random bench.endpoint=search   # searches, fused with the BM25 prior

Two real server processes run on loopback ports, one per mode (on: `max_batch` from
conf/serve.yaml; off: `max_batch=1`). For each client count, that many threads each send
`requests_per_client` requests (`bench.endpoint`: recommend, or search with 2-3 words of a random
item's title as the query) back to back, alternately to each server, `repeats`
times. Reported: median p50/p99 latency and throughput per mode, and the on/off ratios. All traffic
is loopback, and the run stops measuring after `bench.max_seconds`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from neo.api import find_catalog, read_checkpoint_meta
from neo.data.catalog import Catalog
from neo.devices import tune_host_allocator
from neo.io import write_json
from neo.serving.process import ServerProcess
from neo.sids.table import SIDS_DIR, load_tables

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
ENDPOINTS = ("recommend", "search")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class BenchServingRecipe:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.bench = cfg.bench
        self.deadline = time.monotonic() + float(self.bench.max_seconds)
        self.endpoint = str(self.bench.get("endpoint", "recommend"))
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"bench.endpoint: expected one of {list(ENDPOINTS)}, got {self.endpoint!r}")
        self.workdir = Path()

    # ----- setup -------------------------------------------------------------------------------------
    def _checkpoint(self) -> Path:
        """The checkpoint to serve; `random`: the tiny preset with random weights over the demo world."""
        if str(self.cfg.checkpoint) != "random":
            return Path(self.cfg.checkpoint)
        from neo.data.world import generate_world
        from neo.serving.tiny import write_random_checkpoint

        world = generate_world(self.workdir / "world", seed=0, scale=self.bench.world_scale)
        return write_random_checkpoint(self.workdir / "checkpoint", world, seed=0)

    def _bodies(self, checkpoint: Path, count: int) -> list[dict[str, Any]]:
        """Distinct requests, target types in rotation: random histories over all types (recommend), or
        2-3 words of a random title of the target type (search)."""
        tables = load_tables(checkpoint / SIDS_DIR)
        items = [item for table in tables.values() for item in table.item_ids]
        types = list(tables)
        rng = np.random.default_rng(0)
        if self.endpoint == "search":
            catalog = Catalog.load(find_catalog(checkpoint, read_checkpoint_meta(checkpoint)))
            titles = dict(zip(catalog.items["id"], catalog.items["title"], strict=True))
            bodies = []
            for n in range(count):
                target_type = types[n % len(types)]
                ids = tables[target_type].item_ids
                words = titles[ids[int(rng.integers(len(ids)))]].split()
                start = int(rng.integers(max(len(words) - 1, 1)))
                query = " ".join(words[start : start + int(rng.integers(2, 4))])
                bodies.append({"query": query, "target_type": target_type, "k": int(self.bench.k)})
            return bodies
        length = int(self.bench.history_length)
        return [
            {
                "history": [items[i] for i in rng.choice(len(items), size=length, replace=False)],
                "target_type": types[n % len(types)],
                "k": int(self.bench.k),
            }
            for n in range(count)
        ]

    # ----- measurement -------------------------------------------------------------------------------
    def _client(self, base_url: str, bodies: list[dict[str, Any]]) -> tuple[list[float], int]:
        latencies, errors = [], 0
        with httpx.Client(base_url=base_url, timeout=120) as client:
            for body in bodies:
                started = time.perf_counter()
                response = client.post(f"/v1/{self.endpoint}", json=body)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
        return latencies, errors

    def _measure(self, base_url: str, bodies: list[dict[str, Any]], clients: int) -> dict[str, float]:
        per_client = int(self.bench.requests_per_client)
        shares = [bodies[(c * per_client) % len(bodies) :][:per_client] for c in range(clients)]
        shares = [share if len(share) == per_client else bodies[:per_client] for share in shares]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            outcomes = list(pool.map(lambda share: self._client(base_url, share), shares))
        wall = time.perf_counter() - started
        latencies = [x for lat, _ in outcomes for x in lat]
        return {
            "clients": clients,
            "requests": len(latencies),
            "errors": sum(e for _, e in outcomes),
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "mean_ms": statistics.fmean(latencies) * 1000,
            "throughput_rps": len(latencies) / wall,
        }

    def _server(self, checkpoint: Path, max_batch: int) -> ServerProcess:
        overrides = [
            f"max_batch={max_batch}",
            f"max_wait_ms={self.cfg.max_wait_ms}",
            f"beam_width={self.cfg.beam_width}",
            f"queue_size={self.cfg.queue_size}",
            f"torch_threads={self.cfg.torch_threads}",
            "log_level=warning",
        ]
        return ServerProcess(checkpoint, overrides, log_path=self.workdir / f"server-batch{max_batch}.log")

    def _compare(self, checkpoint: Path, bodies: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
        """Both servers up at once, measured alternately (on, off, on, off...) for every client count.

        Alternating means a burst of load from elsewhere on a shared machine hits both modes alike;
        the median over `repeats` rounds is reported.
        """
        modes = {"on": int(self.cfg.max_batch), "off": 1}
        servers = {mode: self._server(checkpoint, max_batch) for mode, max_batch in modes.items()}
        rows: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
        try:
            urls = {mode: server.wait_ready() for mode, server in servers.items()}
            for url in urls.values():
                self._client(url, bodies[: int(self.bench.warmup_requests)])
            for clients in self.bench.clients:
                rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
                for _ in tqdm(range(int(self.bench.repeats)), desc=f"{clients} clients", leave=False):
                    if time.monotonic() > self.deadline:
                        break
                    for mode, url in urls.items():
                        rounds[mode].append(self._measure(url, bodies, int(clients)))
                if not rounds["off"]:
                    print(f"bench_serving: time limit reached before {clients} clients")
                    break
                for mode in modes:
                    rows[mode].append(self._median(rounds[mode]) | {"max_batch": modes[mode]})
                    row = rows[mode][-1]
                    print(
                        f"  batching {mode:>3} (max_batch={modes[mode]:>2}) clients={clients:>3}: "
                        f"p50 {row['p50_ms']:8.1f} ms  p99 {row['p99_ms']:8.1f} ms  "
                        f"{row['throughput_rps']:7.1f} req/s  errors {row['errors']}",
                        flush=True,
                    )
        finally:
            for server in servers.values():
                server.stop()
        return rows

    @staticmethod
    def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
        keys = ("p50_ms", "p99_ms", "mean_ms", "throughput_rps")
        return {
            "clients": rounds[0]["clients"],
            "rounds": len(rounds),
            "requests": sum(r["requests"] for r in rounds),
            "errors": sum(r["errors"] for r in rounds),
            **{key: statistics.median(r[key] for r in rounds) for key in keys},
        }

    # ----- report ------------------------------------------------------------------------------------
    @staticmethod
    def _ratios(on: list[dict[str, float]], off: list[dict[str, float]]) -> list[dict[str, float]]:
        return [
            {
                "clients": a["clients"],
                "throughput_on_over_off": a["throughput_rps"] / b["throughput_rps"],
                "p50_on_over_off": a["p50_ms"] / b["p50_ms"],
                "p99_on_over_off": a["p99_ms"] / b["p99_ms"],
            }
            for a, b in zip(on, off, strict=False)
        ]

    def run(self) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="neo-bench-serving-") as workdir:
            self.workdir = Path(workdir)
            return self._run()

    def _run(self) -> dict[str, Any]:
        checkpoint = self._checkpoint()
        per_client = int(self.bench.requests_per_client)
        bodies = self._bodies(checkpoint, max(int(c) for c in self.bench.clients) * per_client)
        print(
            f"bench_serving: {self.endpoint}, checkpoint {checkpoint}, top-{self.bench.k}, "
            f"beam width {self.cfg.beam_width}, "
            f"{per_client} requests per client"
        )
        rows = self._compare(checkpoint, bodies)
        on, off = rows["on"], rows["off"]
        ratios = self._ratios(on, off)
        print("\nclients  throughput on/off  p50 on/off  p99 on/off")
        for row in ratios:
            print(
                f"{row['clients']:>7}  {row['throughput_on_over_off']:>17.2f}  "
                f"{row['p50_on_over_off']:>10.2f}  "
                f"{row['p99_on_over_off']:>10.2f}"
            )
        result = {
            "checkpoint": str(checkpoint),
            "config": OmegaConf.to_container(self.bench, resolve=True),
            "max_wait_ms": float(self.cfg.max_wait_ms),
            "beam_width": int(self.cfg.beam_width),
            "batching_on": on,
            "batching_off": off,
            "ratios": ratios,
        }
        write_json(self.bench.out, result)
        print(f"bench_serving: wrote {self.bench.out}")
        return result


# An absolute config path: `neo run`/`neo serve` import this module as neo.recipes.*, where a relative
# path would resolve against the package instead of the repository's conf/.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="serve")
def main(cfg: DictConfig) -> None:
    BenchServingRecipe(cfg).run()
    sys.exit(0)


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
