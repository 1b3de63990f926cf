"""Training: the protocol of METHODS §6 for one model, seed and holdout group."""

from .loop import TrainConfig, Trainer, TrainingConfigError, TrainingData, TrainingDiverged

__all__ = ["TrainConfig", "TrainingConfigError", "Trainer", "TrainingData", "TrainingDiverged"]
