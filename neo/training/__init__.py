"""Staged training on DeepSpeed: the engine, stage preparation and checkpoints."""

from neo.training.checkpoint import latest_state, load_stage_checkpoint, require_stage, save_stage_checkpoint
from neo.training.engine import Engine, TrainSettings, collate, lr_factor
from neo.training.loss import LabelledPositionsLoss
from neo.training.stages import STAGES, prepare_for_stage

__all__ = [
    "STAGES",
    "Engine",
    "LabelledPositionsLoss",
    "TrainSettings",
    "collate",
    "latest_state",
    "load_stage_checkpoint",
    "lr_factor",
    "prepare_for_stage",
    "require_stage",
    "save_stage_checkpoint",
]
