"""Language production (METHODS §7, Figure 5): a Production-RNN that decodes
instructions from sensorimotor states, motor-feedback task vectors, and partner
models that perform tasks from the produced instructions."""

from .decoder import (
    DecoderConfig,
    ProductionRNN,
    load_decoder,
    save_decoder,
    sequence_loss,
    state_features,
    teacher_forcing_ratio,
    train_decoder,
)
from .feedback import FeedbackConfig, feedback_table, motor_feedback, vectors_of
from .partners import SETTING_ORDER, SOURCES, partner_accuracy, partner_summary, partner_welch
from .produce import (
    NOVEL,
    confusion_matrix,
    embed_sentences,
    label_sentences,
    produce_instructions,
    read_vectors,
    write_vectors,
)
from .vocab import EOS, PAD, SOS, Vocabulary, detokenise, tokenise

__all__ = [
    "DecoderConfig", "ProductionRNN", "load_decoder", "save_decoder", "sequence_loss",
    "state_features", "teacher_forcing_ratio", "train_decoder", "FeedbackConfig",
    "feedback_table", "motor_feedback", "vectors_of", "SETTING_ORDER", "SOURCES",
    "partner_accuracy", "partner_summary", "partner_welch", "NOVEL", "confusion_matrix",
    "embed_sentences", "label_sentences", "produce_instructions", "read_vectors",
    "write_vectors", "EOS", "PAD", "SOS", "Vocabulary", "detokenise", "tokenise",
]
