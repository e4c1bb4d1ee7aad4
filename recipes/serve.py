"""Serve a checkpoint over HTTP: `neo serve checkpoint=DIR` (same as `neo run serve checkpoint=DIR`).

The server starts listening at once (so `/healthz` answers) and loads the model in the background;
`/readyz` turns 200 when it can serve. If loading fails the process exits with status 1.
"""

from __future__ import annotations

import dataclasses
import logging
import logging.config
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from neo.api import Limits, Neo
from neo.devices import tune_host_allocator
from neo.serving.app import ServeConfig, create_app
from neo.serving.logs import log_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

log = logging.getLogger("neo.serving")


class ServeRecipe:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.limits = Limits.from_mapping(OmegaConf.to_container(cfg.limits, resolve=True))
        self.config = ServeConfig(
            host=cfg.host,
            port=int(cfg.port),
            api_key=cfg.api_key or None,
            max_batch=int(cfg.max_batch),
            max_wait_ms=float(cfg.max_wait_ms),
            queue_size=int(cfg.queue_size),
            retry_after_s=int(cfg.retry_after_s),
            request_timeout_s=float(cfg.request_timeout_s),
            max_body_bytes=int(cfg.max_body_bytes),
            limits=self.limits,
        )
        self.load_failed = False

    def _load_engine(self) -> Neo:
        if self.cfg.torch_threads:
            torch.set_num_threads(int(self.cfg.torch_threads))
        engine = Neo.from_pretrained(
            self.cfg.checkpoint,
            device=self.cfg.device,
            dtype=self.cfg.dtype,
            catalog=self.cfg.catalog,
            limits=self.limits,
            beam_width=int(self.cfg.beam_width),
            max_new_tokens=int(self.cfg.max_new_tokens),
            max_batch_size=int(self.cfg.max_batch),  # the batcher's batch is decoded whole, as configured
            additions=self.cfg.additions,
        )
        if self.cfg.prior_weight is not None:
            # one weight for every recommendation: it replaces the checkpoint's per-type weights too
            engine.fusion = dataclasses.replace(engine.fusion, weight=float(self.cfg.prior_weight), type_weights={})
        if self.cfg.lexical_weight is not None:
            engine.lexical_fusion = dataclasses.replace(engine.lexical_fusion, weight=float(self.cfg.lexical_weight))
        return engine

    def run(self) -> int:
        import uvicorn

        logging.config.dictConfig(log_config(self.cfg.log_level))
        server: uvicorn.Server | None = None

        def stop_on_failure(_: BaseException) -> None:
            self.load_failed = True
            if server is not None:
                server.should_exit = True

        app = create_app(self._load_engine, self.config, on_load_failure=stop_on_failure)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.config.host,
                port=self.config.port,
                log_config=log_config(self.cfg.log_level),
                access_log=False,
            )
        )
        log.info(
            "serving",
            extra={
                "checkpoint": str(self.cfg.checkpoint),
                "host": self.config.host,
                "port": self.config.port,
                "auth": self.config.api_key is not None,
                "max_batch": self.config.max_batch,
                "max_wait_ms": self.config.max_wait_ms,
            },
        )
        server.run()
        return 1 if self.load_failed else 0


# An absolute config path: `neo run`/`neo serve` import this module as neo.recipes.*, where a relative
# path would resolve against the package instead of the repository's conf/.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="serve")
def main(cfg: DictConfig) -> None:
    sys.exit(ServeRecipe(cfg).run())


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
