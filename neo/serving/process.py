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


class ServerProcess:
    """One `python -m neo.recipes.serve` child; start several before waiting so they boot in parallel."""

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        overrides: Sequence[str] = (),
        log_path: Path | None = None,
        via_cli: bool = False,
    ):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        entry = ["neo.cli", "serve"] if via_cli else ["neo.recipes.serve"]  # `neo serve` runs the same recipe
        command = [
            sys.executable,
            "-m",
            *entry,
            f"checkpoint={checkpoint}",
            f"port={self.port}",
            "host=127.0.0.1",
            *overrides,
        ]
        env = os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
        self._log = open(log_path, "w") if log_path else None  # noqa: SIM115 - closed in stop()
        sink = self._log or subprocess.DEVNULL
        self.process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)

    def _where(self) -> str:
        """Where to look, with the end of the server's log (it may live in a temporary directory)."""
        if not self.log_path:
            return ""
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
        return f"; log {self.log_path} ends with:\n{tail}"

    def wait_ready(self, timeout_s: float = 180.0) -> str:
        """Poll /readyz until 200; fail early if the process dies. Returns the base URL."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with status {self.process.returncode} before it was ready" + self._where()
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return self.base_url
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {timeout_s:.0f} s" + self._where())
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM (graceful: in-flight batch finishes), then SIGKILL if it does not exit in 15 s."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        if self._log is not None:
            self._log.close()


@contextlib.contextmanager
def running_server(
    checkpoint: str | os.PathLike,
    overrides: Sequence[str] = (),
    log_path: Path | None = None,
    ready_timeout_s: float = 180.0,
) -> Iterator[str]:
    """Start a server, wait until /readyz answers 200, yield its base URL; always stop the process."""
    server = ServerProcess(checkpoint, overrides, log_path)
    try:
        yield server.wait_ready(ready_timeout_s)
    finally:
        server.stop()
