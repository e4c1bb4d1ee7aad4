"""Run `recipes/serve.py` as a child process on a free loopback port: for tests and the benchmark.

A real process exercises what an in-process client cannot: uvicorn, the startup/shutdown path,
the worker thread beside the event loop, and true concurrent connections.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(checkpoint: str | os.PathLike, overrides: Sequence[str] = (), log_path: Path | None = None,
                   ready_timeout_s: float = 120.0) -> Iterator[str]:
    """Start a server, wait until /readyz answers 200, yield its base URL; always stop the process."""
    port = free_port()
    command = [sys.executable, "-m", "neo.recipes.serve", f"checkpoint={checkpoint}", f"port={port}",
               "host=127.0.0.1", *overrides]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    log_file = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(command, stdout=log_file, stderr=log_file, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with status {process.returncode} before it was ready"
                                   + (f"; log: {log_path}" if log_path else ""))
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {ready_timeout_s:.0f} s"
                                   + (f"; log: {log_path}" if log_path else ""))
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        if log_path:
            log_file.close()
