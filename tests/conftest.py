import os
from pathlib import Path

import pytest
import torch
from tokenizers import pre_tokenizers, trainers
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    GPT2Config,
    GPT2Model,
    GPT2Tokenizer,
)

from instructnet.embeddings import LanguageModel
from instructnet.instructions import load_corpus

REPO = Path(__file__).resolve().parents[1]

# The hub is never reachable in tests; fail fast instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def local_test_run(tmp_path_factory) -> Path:
    """The workflow of config/test.yaml run once locally (`snakemake --cores 2`) in a
    temporary directory, shared by tests/test_workflow.py and tests/test_slurm.py."""
    import subprocess
    import sys

    workdir = tmp_path_factory.mktemp("wf")
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(REPO / "config" / "test.yaml"),
           "--cores", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout}\n{proc.stderr}")
    return workdir


# Runs command lines through the CLIs' entry points (snakemake.cli.main, instructnet.cli.main)
# in one Python process, one after the other: one interpreter start (~10 s here) instead of
# one per command line.
_BATCH = r"""
import json, os, sys

import instructnet.cli
import snakemake.cli

for i, (cwd, program, argv) in enumerate(json.loads(sys.argv[1])):
    os.chdir(cwd)
    try:
        code = {"snakemake": snakemake.cli.main, "instructnet": instructnet.cli.main}[program](argv)
    except SystemExit as exc:
        code = exc.code
    code = 0 if code is None else code if isinstance(code, int) else 1
    print(f"\n@@@ {i} {code}", file=sys.stderr, flush=True)
"""


@pytest.fixture(scope="session")
def cli_batch():
    """[(cwd, "snakemake" | "instructnet", argv)] -> [(exit code, output)], run in one
    process (_BATCH) with stdout and stderr together, in order."""
    import json
    import re
    import subprocess
    import sys

    def run(commands):
        proc = subprocess.run([sys.executable, "-u", "-c", _BATCH,
                               json.dumps([[str(c), p, list(a)] for c, p, a in commands])],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        parts = re.split(r"\n?@@@ (\d+) (\d+)\n", proc.stdout)
        results = [(int(code), out) for out, _, code in zip(parts[::3], parts[1::3], parts[2::3])]
        assert len(results) == len(commands), proc.stdout[-3000:]
        return results

    return run


N_LAYER = 2
HIDDEN = 32


@pytest.fixture(scope="session")
def corpus():
    return load_corpus()


def _trained_tokenizer(folder, tokenizer, texts, trainer):
    """Train ``tokenizer``'s vocabulary on ``texts``, save it to ``folder`` and reload
    it (so its special-token ids are those of the trained vocabulary)."""
    tokenizer.backend_tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save_pretrained(folder)
    return type(tokenizer).from_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, corpus):
    """Folders holding random-weight GPT-2, BERT and CLIP text models with tokenizers
    trained on the corpus, as local-path LanguageModels (arch → model)."""
    texts = list(corpus["text"])
    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    folders = {arch: tmp_path_factory.mktemp(arch) for arch in ("gpt2", "bert", "clip")}
    gpt2_tok = _trained_tokenizer(
        folders["gpt2"], GPT2Tokenizer(), texts,
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=byte_alphabet
        ),
    )
    bert_tok = _trained_tokenizer(
        folders["bert"], BertTokenizer(), texts,
        trainers.WordPieceTrainer(
            vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        ),
    )
    clip_tok = _trained_tokenizer(
        folders["clip"], CLIPTokenizer(), texts,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=["<|startoftext|>", "<|endoftext|>"],
            initial_alphabet=byte_alphabet,
            end_of_word_suffix="</w>",
        ),
    )
    small = dict(num_hidden_layers=N_LAYER, hidden_size=HIDDEN, num_attention_heads=2,
                 intermediate_size=64)
    torch.manual_seed(0)
    networks = {
        "gpt2": GPT2Model(GPT2Config(
            vocab_size=len(gpt2_tok), n_layer=N_LAYER, n_embd=HIDDEN, n_head=2,
            n_positions=128, bos_token_id=gpt2_tok.eos_token_id,
            eos_token_id=gpt2_tok.eos_token_id)),
        "bert": BertModel(BertConfig(
            vocab_size=len(bert_tok), max_position_embeddings=128,
            pad_token_id=bert_tok.pad_token_id, **small)),
        "clip": CLIPTextModel(CLIPTextConfig(
            vocab_size=len(clip_tok), max_position_embeddings=77,
            bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id,
            pad_token_id=clip_tok.pad_token_id, **small)),
    }
    assert gpt2_tok.pad_token is None  # load() must supply one
    models = {}
    for arch, network in networks.items():
        network.save_pretrained(folders[arch])
        kind, pooling = ("clip", "pooler") if arch == "clip" else ("auto", "mean")
        models[arch] = LanguageModel(f"tiny_{arch}", str(folders[arch]), kind, pooling)
    return models


class HostDataError(AssertionError):
    """An op that would move data between host and device on a GPU."""


def no_host_data(cpu_only=("grad_scale",)):
    """A context in which ops that bring host data into tensors or read tensor values
    back to the host raise :class:`HostDataError` — on a GPU each is a synchronising
    copy (``torch.tensor(...)``/``as_tensor(numpy)`` and ``t[i, j] = 5.0`` lift host
    data; ``.item()``, ``bool(t)``, ``.tolist()`` and ``nonzero`` read values back).
    Works on CPU, where ``torch.cuda.set_sync_debug_mode`` does not exist, so CI
    checks the training step's host-sync freedom too. ``torch.optim``'s own
    bookkeeping is exempt: its step counters are host tensors on every device; so are
    the functions named in ``cpu_only``, which read values on CPU tensors only
    (``gru.grad_scale`` returns 1 on other devices without reading anything)."""
    import traceback

    from torch.utils._python_dispatch import TorchDispatchMode

    flagged = {"aten::lift_fresh", "aten::lift_fresh_copy", "aten::_local_scalar_dense",
               "aten::nonzero", "aten::nonzero_static"}

    class _Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func._schema.name in flagged:
                stack = traceback.extract_stack()
                if not any("/torch/optim/" in f.filename or f.name in cpu_only for f in stack):
                    where = [f"{f.filename}:{f.lineno}" for f in stack
                             if "/instructnet/" in f.filename]
                    raise HostDataError(f"{func._schema.name} at {where[-1] if where else '?'}")
            return func(*args, **(kwargs or {}))

    return _Mode()


def pack_members(folder, grid, tasks, lms, checkpoints=True):
    """The PackMembers of a grid of (model name, seed, TrainConfig), each writing its
    model, log (and checkpoint) under ``folder/{name}_{seed}``, holdout ``h``."""
    from instructnet.models import model_spec
    from instructnet.training.packed import PackMember

    out = []
    for name, seed, cfg in grid:
        d = Path(folder) / f"{name}_{seed}"
        d.mkdir(parents=True, exist_ok=True)
        out.append(PackMember(model_spec(name, lms), "h", seed, tasks, cfg, d / "model.pt",
                              d / "log.parquet", d / "checkpoint.pt" if checkpoints else None))
    return out
