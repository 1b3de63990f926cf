"""Language production (METHODS §7, Figure 5): vocabulary, Production-RNN, motor
feedback, produced-sentence labelling and re-embedding, partners, Figure 5 panels."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from instructnet.embeddings import bag_of_words, embed_corpus, instruction_rows, language_models
from instructnet.figures import fig5
from instructnet.models import build_model, masked_mse, model_spec
from instructnet.production import (
    DecoderConfig,
    FeedbackConfig,
    ProductionRNN,
    Vocabulary,
    confusion_matrix,
    detokenise,
    embed_sentences,
    label_sentences,
    motor_feedback,
    partner_accuracy,
    partner_summary,
    partner_welch,
    sequence_loss,
    teacher_forcing_ratio,
    tokenise,
    train_decoder,
)
from instructnet.production.decoder import DecoderData
from instructnet.production.run import check_instructor, default_instructor
from instructnet.tasks import TASKS, TrialBatch, generate_trials
from instructnet.tasks.batches import draw_batch
from instructnet.tasks.constants import TASK_INDEX

LMS = language_models()
SMALL_TASKS = ["DMMod1", "AntiDMMod1"]


@pytest.fixture(scope="module")
def pools():
    return {t: TrialBatch.from_frame(generate_trials(t, 64, seed=TASK_INDEX[t])) for t in SMALL_TASKS}


@pytest.fixture(scope="module")
def instructed(corpus):
    """A tiny instructed model over a bag-of-words embedding of the real corpus."""
    emb = torch.tensor(bag_of_words(corpus))
    return build_model(model_spec("bownet", LMS), seed=3, embeddings=emb, hidden=24), emb


# --------------------------------------------------------------------- vocabulary
def test_tokens_round_trip_every_corpus_sentence(corpus):
    for text in corpus["text"]:
        assert detokenise(tokenise(text)) == text
    vocab = Vocabulary.from_sentences(corpus["text"])
    ids = vocab.encode(corpus["text"].iloc[0])
    assert ids[-1] == vocab.eos and vocab.decode(ids + [5, 6]) == corpus["text"].iloc[0]
    with pytest.raises(KeyError, match="zebra"):
        vocab.encode("Respond to the zebra.")
    texts = corpus["text"].iloc[:3].tolist()
    batch = vocab.encode_batch(texts)
    lengths = [len(tokenise(t)) + 1 for t in texts]
    assert batch.shape == (3, max(lengths))
    for row, n in zip(batch, lengths):
        assert row[n - 1] == vocab.eos and (row[n:] == vocab.pad).all() and (row[: n - 1] > 2).all()


# ------------------------------------------------------------- Production-RNN
def test_decoder_loss_ignores_padding():
    torch.manual_seed(0)
    targets = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0], [9, 10, 2, 0]])
    logits = torch.randn(3, 4, 12)
    loss = sequence_loss(logits, targets)
    real = targets != Vocabulary.pad
    manual = torch.nn.functional.cross_entropy(logits[real], targets[real])
    assert torch.allclose(loss, manual)
    # whatever the decoder says at padded positions, and however much padding: same loss
    changed = logits.clone()
    changed[~real] = torch.randn(int((~real).sum()), 12) * 100
    assert torch.allclose(sequence_loss(changed, targets), loss)
    longer_t = torch.cat([targets, torch.zeros(3, 3, dtype=torch.long)], 1)
    longer_l = torch.cat([logits, torch.randn(3, 3, 12)], 1)
    assert torch.allclose(sequence_loss(longer_l, longer_t), loss)
    # and the gradient at padded positions is zero
    leaf = logits.clone().requires_grad_(True)
    sequence_loss(leaf, targets).backward()
    assert (leaf.grad[~real] == 0).all() and (leaf.grad[real] != 0).any()


def test_teacher_forcing_schedule():
    epochs = 80
    ratios = [teacher_forcing_ratio(e, epochs) for e in range(epochs)]
    assert ratios[0] == 0.5 and ratios[40] == pytest.approx(0.25)
    assert ratios[-1] == pytest.approx(0.5 / 80)
    assert all(a > b for a, b in zip(ratios, ratios[1:]))
    assert teacher_forcing_ratio(1, 4) == pytest.approx(0.5 * 3 / 4)
    with pytest.raises(ValueError):
        teacher_forcing_ratio(80, 80)


def test_teacher_forcing_feeds_targets_and_free_running_feeds_predictions():
    torch.manual_seed(1)
    dec = ProductionRNN(vocab_size=15, sm_hidden=8, hidden=16, dropout=0.0).eval()
    states = torch.rand(2, 30, 8)
    a = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    b = a.clone()
    b[:, 1] = 11  # change the second target token
    forced_a, forced_b = dec(states, a, True), dec(states, b, True)
    assert torch.equal(forced_a[:, :2], forced_b[:, :2])  # steps 0, 1 read <sos>, target 0
    assert not torch.allclose(forced_a[:, 2], forced_b[:, 2])  # step 2 reads target 1
    free_a, free_b = dec(states, a, False), dec(states, b, False)
    assert torch.equal(free_a, free_b)  # own predictions: targets never read
    greedy = dec.greedy(states, 4)
    assert torch.equal(free_a.argmax(-1)[:, : greedy.shape[1]][greedy != 0], greedy[greedy != 0])


def test_greedy_decoding_stops_at_end_token_or_max_length():
    dec = ProductionRNN(vocab_size=10, sm_hidden=4, hidden=8, dropout=0.0).eval()
    states = torch.rand(3, 20, 4)
    with torch.no_grad():
        dec.out.weight.zero_()
        dec.out.bias.zero_()
        dec.out.bias[Vocabulary.eos] = 10.0
    out = dec.greedy(states, max_length=7)
    assert out.shape == (3, 1) and (out == Vocabulary.eos).all()
    with torch.no_grad():
        dec.out.bias[Vocabulary.eos] = -10.0
        dec.out.bias[4] = 10.0
    out = dec.greedy(states, max_length=7)
    assert out.shape == (3, 7) and (out == 4).all()
    # rows end independently: after its <eos>, a row is padding
    vocab = Vocabulary(["a", "b"])
    assert vocab.tokens([3, 4, Vocabulary.eos, 3]) == ["a", "b"]


def test_decoder_learns_instructions(instructed, pools, corpus):
    model, _ = instructed
    sentences = instruction_rows(corpus, SMALL_TASKS, "train")
    data = DecoderData(SMALL_TASKS, pools, sentences, list(corpus["text"]))
    config = DecoderConfig(hidden=64, epochs=3, batches_per_epoch=25, batch_size=16, lr=3e-3,
                           max_length=40)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    decoder, vocab, log = train_decoder(model, data, config, seed=1, noise_seed=2)
    assert list(log["epoch"]) == [1, 2, 3]
    assert log["teacher_forcing"].tolist() == pytest.approx([0.5, 1 / 3, 1 / 6])
    assert log["loss"].iloc[-1] < log["loss"].iloc[0] - 0.5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    words = set(vocab.itos[3:])
    assert words == {t for i in torch.cat(list(sentences.values())) for t in tokenise(corpus["text"].iloc[int(i)])}
    again, _, log2 = train_decoder(model, data, config, seed=1, noise_seed=2)
    assert log2["loss"].equals(log["loss"])  # seeded: same inputs, same run
    assert all(torch.equal(a, b) for a, b in zip(decoder.state_dict().values(),
                                                  again.state_dict().values()))


# -------------------------------------------------------------- motor feedback
def test_motor_feedback_freezes_weights_and_moves_vectors(instructed, pools):
    model, _ = instructed
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    config = FeedbackConfig(vectors=3, batch_size=8, batches_per_epoch=15, max_epochs=3, lr=0.05,
                            lr_decay=0.8, lr_decay_batches=15, threshold=1.0)
    from instructnet.production.feedback import initial_vectors

    start = initial_vectors(model, 3, torch.Generator().manual_seed(11))
    vectors, log = motor_feedback(model, "DMMod1", pools["DMMod1"], config, seed=11, noise_seed=12)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert vectors.shape == (3, 64) and (vectors - start).norm(dim=1).min() > 0.1
    per_epoch = log.groupby("epoch")["loss"].mean()
    assert per_epoch.iloc[-1] < per_epoch.iloc[0]
    assert list(log["epoch"].unique()) == [1, 2, 3] and log["lr"].iloc[-1] == pytest.approx(0.05 * 0.64)
    # the inferred vectors lower the task loss against the starting vectors, same trials
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    _, _, r = draw_batch(rng, gen, pools["DMMod1"], None, 64)
    with torch.no_grad():
        lose = [masked_mse(model(r.inputs, v.expand(64, 64))[0], r.targets, r.mask).item()
                for v in (start.mean(0, keepdim=True), vectors.mean(0, keepdim=True))]
    assert lose[1] < lose[0]


def test_production_learning_rates_fall_per_batch_whatever_the_epoch_size(instructed, pools):
    """lr × lr_decay per lr_decay_batches batches (the paper's epoch), applied after each
    epoch: the paper's settings decay once per epoch, a demo's short epochs by the
    fraction of a paper epoch they hold."""
    assert DecoderConfig().epoch_lr_factor == pytest.approx(0.99)
    assert DecoderConfig(batches_per_epoch=120).epoch_lr_factor == pytest.approx(0.99 ** (120 / 2400))
    assert FeedbackConfig().epoch_lr_factor == pytest.approx(0.8)
    assert FeedbackConfig(batches_per_epoch=20).epoch_lr_factor == pytest.approx(0.8 ** (20 / 800))
    for cls in (DecoderConfig, FeedbackConfig):
        with pytest.raises(ValueError, match="lr_decay_batches"):
            cls(lr_decay_batches=0)
    model, _ = instructed
    config = FeedbackConfig(vectors=2, batch_size=4, batches_per_epoch=4, max_epochs=3, lr=0.05,
                            lr_decay=0.5, lr_decay_batches=8, threshold=1.0)
    _, log = motor_feedback(model, "DMMod1", pools["DMMod1"], config, seed=1, noise_seed=2)
    lrs = log.groupby("epoch")["lr"].first().tolist()
    assert lrs == pytest.approx([0.05, 0.05 * 0.5 ** 0.5, 0.05 * 0.5])


def test_motor_feedback_stops_once_every_vector_converged(instructed, pools, monkeypatch):
    import instructnet.production.feedback as fb

    model, _ = instructed
    config = FeedbackConfig(vectors=2, batch_size=4, batches_per_epoch=2, max_epochs=4)
    monkeypatch.setattr(fb, "is_correct", lambda out, trials: torch.ones(len(out), dtype=torch.bool))
    _, log = motor_feedback(model, "DMMod1", pools["DMMod1"], config, seed=1, noise_seed=2)
    assert log["epoch"].max() == 1 and log["converged"].all() and (log["accuracy"] == 1).all()
    monkeypatch.setattr(fb, "is_correct", lambda out, trials: torch.zeros(len(out), dtype=torch.bool))
    _, log = motor_feedback(model, "DMMod1", pools["DMMod1"], config, seed=1, noise_seed=2)
    assert log["epoch"].max() == 4 and not log["converged"].any()
    assert FeedbackConfig().threshold_of("DMC") == 0.85 and FeedbackConfig().threshold_of("Go") == 0.9
    with pytest.raises(ValueError, match="vectors"):
        FeedbackConfig(vectors=0)


# ------------------------------------------------- labelling and re-embedding
def test_labels_and_confusion_matrix(corpus):
    train = corpus[corpus["split"] == "train"]
    val = corpus[corpus["split"] == "validation"]
    texts = [train["text"].iloc[0], train["text"].iloc[0].lower().rstrip("."),
             "Respond in some new way.", val["text"].iloc[0]]
    produced = pd.DataFrame({"task": ["Go", "Go", "Go", "AntiGo"], "text": texts})
    out = label_sentences(produced, corpus)
    assert out["novel"].tolist() == [False, False, True, True]
    assert out["match_task"].iloc[0] == train["task"].iloc[0]
    assert int(out["match_sentence_id"].iloc[0]) == int(train["sentence_id"].iloc[0])
    assert out["validation_match"].tolist() == [False, False, False, True]
    m = confusion_matrix(out)
    assert list(m.columns)[-1] == "novel" and len(m.columns) == len(TASKS) + 1
    assert m.loc["Go", train["task"].iloc[0]] == pytest.approx(2 / 3)
    assert m.loc["Go", "novel"] == pytest.approx(1 / 3) and m.loc["AntiGo", "novel"] == 1.0
    assert np.allclose(m.sum(axis=1), 1.0)


def _produced_copy(vocab, text):
    """What the decoder emits when it reproduces ``text``: ids → tokens → sentence."""
    return vocab.decode(vocab.encode(text))


@pytest.mark.parametrize("arch", ["gpt2", "bert", "clip"])
def test_produced_sentence_is_reembedded_like_the_corpus(arch, tiny_models, corpus):
    lm = tiny_models[arch]
    rows = [3, 500, 999]
    cached, _ = embed_corpus(lm, corpus.iloc[rows])
    vocab = Vocabulary.from_sentences(corpus["text"])
    produced = [_produced_copy(vocab, corpus["text"].iloc[i]) for i in rows]
    # mixed with other (novel, longer) sentences in the batch: padding must not matter
    texts = produced + ["respond respond respond in the direction of the stimulus " * 3]
    again = embed_sentences(lm, texts, corpus, batch_size=4)
    assert np.allclose(again[:3], cached, atol=1e-5)


def test_produced_sentence_reaches_the_partner_as_a_corpus_sentence(corpus, instructed):
    bow = LMS["bownet"]
    model, emb = instructed
    vocab = Vocabulary.from_sentences(corpus["text"])
    rows = [10, 20, 777]
    texts = [_produced_copy(vocab, corpus["text"].iloc[i]) for i in rows] + ["Respond zebra."]
    vectors = embed_sentences(bow, texts, corpus)
    assert np.array_equal(vectors[:3], bag_of_words(corpus)[rows])
    assert vectors[3].sum() == 1  # unknown words drop out; "respond" stays
    with torch.no_grad():
        heard = model.encoder.head(torch.tensor(vectors[:3]))
        direct = model.task_vectors(torch.zeros(3, dtype=torch.long), torch.tensor(rows))
    assert torch.allclose(heard, direct)


def test_sbert_minilm_reembedding_matches_cache(corpus):
    lm = LMS["sbertnet_minilm"]
    sub = corpus.iloc[[0, 1, 400, 401]].reset_index(drop=True)
    cached, _ = embed_corpus(lm, sub)
    vocab = Vocabulary.from_sentences(corpus["text"])
    again = embed_sentences(lm, [_produced_copy(vocab, t) for t in sub["text"]][::-1], corpus)
    assert np.allclose(again[::-1], cached, atol=1e-5)


# ------------------------------------------------------------------- partners
def test_partner_sources_and_settings(instructed, pools, corpus):
    model, emb = instructed
    rows = {t: np.flatnonzero((corpus["task"] == t).to_numpy() & (corpus["split"] == "train").to_numpy())
            for t in SMALL_TASKS}
    sentence_embeddings = {t: emb[rows[t][:4]].numpy() for t in SMALL_TASKS}
    novel = {"DMMod1": np.array([True, False, False, False]), "AntiDMMod1": np.zeros(4, bool)}
    vectors = {t: torch.randn(3, 64) for t in SMALL_TASKS}
    table = partner_accuracy(model, SMALL_TASKS, pools, sentence_embeddings, novel, vectors,
                             batch_size=16, repeats=2, seed=4)
    assert set(table.loc[table["task"] == "DMMod1", "source"]) == {"instructions", "novel", "embedding"}
    assert set(table.loc[table["task"] == "AntiDMMod1", "source"]) == {"instructions", "embedding"}
    assert table["accuracy"].between(0, 1).all()
    # both accuracy rules, from the same outputs: the paper's rule is never stricter
    assert set(table["scoring"]) == {"strict", "paper"}
    wide = table.pivot_table(index=["task", "source", "repeat"], columns="scoring",
                             values="accuracy")
    assert (wide["paper"] >= wide["strict"]).all()
    again = partner_accuracy(model, SMALL_TASKS, pools, sentence_embeddings, novel, vectors, 16, 2, 4)
    assert table.equals(again)
    # same trials for every source: all-produced and novel-only agree when they are the same set
    same = partner_accuracy(model, ["DMMod1"], pools, {"DMMod1": sentence_embeddings["DMMod1"][:1]},
                            {"DMMod1": np.array([True])}, vectors, 16, 2, 4)
    a = same.set_index(["source", "repeat"])["accuracy"]
    assert a["instructions"].equals(a["novel"])
    rule = build_model(model_spec("simplenet", LMS), seed=0, hidden=8)
    with pytest.raises(ValueError, match="instructed"):
        partner_accuracy(rule, SMALL_TASKS, pools, sentence_embeddings, novel, vectors, 8, 1, 0)


def test_partner_summary_and_welch():
    rng = np.random.default_rng(0)
    rows = []
    for setting in ["partner trained on task", "task held out from partner"]:
        for source, mu in [("instructions", 0.9), ("embedding", 0.3)]:
            for seed in (1, 2, 3):
                for task in ("Go", "DM", "AntiGo"):
                    rows.append({"setting": setting, "source": source, "partner_seed": seed,
                                 "task": task, "repeat": 0, "accuracy": mu + rng.normal(0, 0.05)})
    table = pd.DataFrame(rows)
    summary = partner_summary(table)
    assert set(summary["n"]) == {9}
    s = summary.set_index(["setting", "source"])["mean"]
    assert s[("partner trained on task", "instructions")] > s[("partner trained on task", "embedding")]
    welch = partner_welch(table)
    w = welch[(welch["a"] == "instructions") & (welch["b"] == "embedding")]
    assert len(w) == 2 and (w["p"] < 1e-6).all() and (w["t"] > 0).all()
    from scipy import stats

    x = table[(table.setting == "partner trained on task") & (table.source == "instructions")]
    y = table[(table.setting == "partner trained on task") & (table.source == "embedding")]
    expected = stats.ttest_ind(x.groupby(["partner_seed", "task"])["accuracy"].mean(),
                               y.groupby(["partner_seed", "task"])["accuracy"].mean(), equal_var=False)
    assert w["p"].iloc[0] == pytest.approx(expected.pvalue)
    # with a scoring column: the same statistics per rule, stacked
    both = pd.concat([table.assign(scoring="strict"),
                      table.assign(scoring="paper", accuracy=table["accuracy"] + 0.05)])
    by_rule = partner_summary(both)
    assert list(by_rule["scoring"].unique()) == ["strict", "paper"]
    strict = by_rule[by_rule["scoring"] == "strict"].drop(columns="scoring").reset_index(drop=True)
    pd.testing.assert_frame_equal(strict, summary)
    assert set(partner_welch(both)["scoring"]) == {"strict", "paper"}


def test_instructor_choice():
    assert default_instructor(["simplenet", "bownet", "sbertnet_minilm"], LMS) == "sbertnet_minilm"
    assert default_instructor(["sbertnet_minilm", "sbertnet_l", "sbertnet"], LMS) == "sbertnet_l"
    assert default_instructor(["simplenet", "bownet"], LMS) == "bownet"
    with pytest.raises(ValueError, match="rule model"):
        check_instructor("simplenet", LMS)
    with pytest.raises(ValueError, match="tuned"):
        check_instructor("sbertnet_tuned", LMS)
    with pytest.raises(ValueError, match="instructed model"):
        default_instructor(["simplenet", "structurenet"], LMS)


# -------------------------------------------------------------------- figures
def test_figure5_panels_from_tables(tmp_path, corpus):
    train = corpus[corpus["split"] == "train"]
    produced = label_sentences(pd.DataFrame({
        "task": ["AntiDMMod1"] * 3 + ["Go"] * 2,
        "text": [train["text"].iloc[0], "Respond away from the first modality.", "Do it.",
                 train["text"].iloc[1], "Go."]}), corpus)
    produced["instructor_holdout"] = ["multitask"] * 5
    produced["instructor_heldout"] = False
    rows = [{"setting": s, "source": src, "partner_seed": 1, "task": t, "repeat": 0,
             "accuracy": a} for s in ["partner trained on task", "double holdout"]
            for src, a in [("instructions", 0.8), ("novel", 0.7), ("embedding", 0.2)]
            for t in ("Go", "AntiDMMod1")]
    partners = pd.DataFrame(rows)
    for name, call in [("d", lambda o: fig5.fig5d_examples(produced, o)),
                       ("e", lambda o: fig5.fig5e_confusion(produced, o)),
                       ("f", lambda o: fig5.fig5f_partners(partners, partner_welch(partners), o)),
                       ("empty", lambda o: fig5.fig5f_partners(partners.iloc[:0], None, o))]:
        png = call(tmp_path / f"fig5{name}.png")
        assert png.read_bytes()[:4] == b"\x89PNG" and png.with_suffix(".pdf").stat().st_size > 0



def test_figure5f_bars_are_the_partner_means(tmp_path, monkeypatch):
    """Each bar of Figure 5f is the mean over (partner seed, task) means of one setting
    and source: the heights drawn equal the table's."""
    rows = [{"setting": s, "source": src, "partner_seed": seed, "task": t, "repeat": r,
             "accuracy": base - 0.1 * seed + 0.05 * r + (0.02 if t == "Go" else 0)}
            for s, shift in [("partner trained on task", 0.0), ("double holdout", -0.2)]
            for src, base in [("instructions", 0.8 + shift), ("novel", 0.7 + shift),
                              ("embedding", 0.3)]
            for seed in (1, 2) for t in ("Go", "AntiDMMod1") for r in (0, 1)]
    partners = pd.DataFrame(rows)
    saved = []
    monkeypatch.setattr(fig5, "save_figure", lambda fig, out: saved.append(fig))
    fig5.fig5f_partners(partners, partner_welch(partners), tmp_path / "f.png")
    heights = sorted(round(p.get_height(), 6) for p in saved[0].axes[0].patches
                     if p.get_height() > 0)
    means = (partners.groupby(["setting", "source", "partner_seed", "task"])["accuracy"].mean()
             .groupby(["setting", "source"]).mean())
    assert heights == sorted(round(v, 6) for v in means)


def test_production_config_errors_name_the_key(repo):
    import yaml

    from instructnet.config import ConfigError, check_config

    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    check_config(copy.deepcopy(config))  # which checks the production section too
    for key, value, message in [
        ("holdouts", ["swap99"], "production.holdouts: unknown holdout group 'swap99'"),
        ("tasks", ["Go", "Gone"], "Gone"),
        ("instructor", "simplenet", "rule model"),
        ("instructor", "sbertnet", "needs language model 'sbertnet'"),
        ("partners", {"seeds": [0]}, "must differ"),
        ("decoder", {"epochs": 0}, "production.decoder.epochs: 0 is less than the minimum of 1"),
        ("decoder", {"dropout": 0.1, "lr": "big"}, "production.decoder.lr: 'big' is not allowed"),
        ("feedback", {"speed": 1}, "production.feedback.speed: unknown key"),
    ]:
        bad = copy.deepcopy({**config, "production": {**config["production"], key: value}})
        with pytest.raises(ConfigError, match=message):
            check_config(bad)
    # switched off, the section is not checked
    check_config(copy.deepcopy({**config, "production": {"enabled": False, "holdouts": ["swap99"]}}))
