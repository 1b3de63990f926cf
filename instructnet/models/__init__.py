"""Models: the sensorimotor RNN (fast ReLU GRU) and the task-information encoders."""

from .encoders import TASK_DIM, InstructionEncoder, RuleEncoder
from .network import SensorimotorModel, build_model, masked_mse
from .spec import RULE_MODELS, ModelSpec, UnknownModelError, model_spec

__all__ = [
    "TASK_DIM", "InstructionEncoder", "RuleEncoder", "SensorimotorModel", "build_model",
    "masked_mse", "RULE_MODELS", "ModelSpec", "UnknownModelError", "model_spec",
]
