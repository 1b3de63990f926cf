"""The instruction corpus (METHODS §4): the shipped set's properties and the loader's checks."""

import re

import pytest
import yaml

from instructnet.instructions import (
    CorpusError,
    is_conditional,
    load_corpus,
    normalise,
    shipped_path,
    vocabulary,
    words,
)
from instructnet.tasks import CONDITIONAL_TASKS, IMPERATIVE_TASKS, TASKS


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


# --- the shipped corpus -------------------------------------------------------------


def test_fifteen_train_five_validation_per_task(corpus):
    counts = corpus.groupby(["task", "split"]).size().unstack()
    assert sorted(counts.index) == sorted(TASKS)
    assert (counts["train"] == 15).all() and (counts["validation"] == 5).all()
    assert len(corpus) == 1000


def test_table_layout(corpus):
    assert list(corpus.columns) == ["task", "split", "sentence_id", "text"]
    assert list(dict.fromkeys(corpus["task"])) == list(TASKS)
    for _, group in corpus.groupby(["task", "split"], sort=False):
        assert list(group["sentence_id"]) == list(range(len(group)))
    # Within each task, train rows come before validation rows.
    for _, group in corpus.groupby("task", sort=False):
        splits = list(group["split"])
        assert splits == ["train"] * 15 + ["validation"] * 5


def test_sentences_unique_across_corpus(corpus):
    keys = corpus["text"].map(normalise)
    assert keys.is_unique
    assert corpus["text"].is_unique


def test_no_sentence_in_both_splits_and_no_near_duplicates(corpus):
    for task, group in corpus.groupby("task"):
        train = set(group.loc[group["split"] == "train", "text"])
        validation = set(group.loc[group["split"] == "validation", "text"])
        assert not train & validation, task
        train_norm = {normalise(s) for s in train}
        assert not train_norm & {normalise(s) for s in validation}, task


def test_conditional_tasks_are_conditional_and_imperatives_are_not(corpus):
    for task, text in zip(corpus["task"], corpus["text"]):
        if task in CONDITIONAL_TASKS:
            assert is_conditional(text), (task, text)
        else:
            assert task in IMPERATIVE_TASKS
            assert not is_conditional(text), (task, text)


def test_no_task_name_tokens(corpus):
    # "go" is an ordinary English verb and appears legitimately; every other task name
    # and every abbreviation that task names are built from must not.
    banned = {t.lower() for t in TASKS} - {"go"}
    banned |= {"anti", "rt", "mod", "dm", "multi", "con", "comp", "dur"}
    for task, text in zip(corpus["task"], corpus["text"]):
        tokens = set(re.findall(r"[a-z0-9]+", text.lower()))
        assert not tokens & banned, (task, text)
        assert not re.search(r"[a-z][A-Z]", text), (task, text)  # no CamelCase tokens


def test_vocabulary(corpus):
    vocab = vocabulary(corpus)
    assert 150 <= len(vocab) <= 250
    assert list(vocab.columns) == ["word", "count", "n_tasks", "n_sentences"]
    assert list(vocab["word"]) == sorted(vocab["word"])
    assert vocab["count"].sum() == sum(len(words(t)) for t in corpus["text"])
    row = vocab.set_index("word").loc["stimulus"]
    containing = corpus[corpus["text"].map(lambda t: "stimulus" in words(t))]
    assert row["n_sentences"] == len(containing)
    assert row["n_tasks"] == containing["task"].nunique()
    assert (vocab["n_sentences"] <= vocab["count"]).all()
    assert (vocab["n_tasks"] <= vocab["n_sentences"]).all()


def test_sentence_lengths_in_paper_range(corpus):
    lengths = corpus["text"].map(lambda t: len(words(t)))
    assert lengths.min() >= 4 and lengths.max() <= 35
    assert 12 <= lengths.mean() <= 22


# --- text helpers ---------------------------------------------------------------------


def test_normalise_and_words():
    assert normalise("  Respond,  toward the STIMULUS! ") == "respond toward the stimulus"
    assert normalise("it;otherwise") == normalise("it; otherwise")
    expected = ["don", "t", "respond", "to", "stimulus", "ok"]
    assert words("Don't respond to stimulus 2, OK?") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("If the first stimulus is stronger, respond to it; otherwise do not respond.", True),
        ("Whenever the stimuli match, go to the first one, else withhold.", True),
        ("In case both match, respond; if not, stay still.", True),
        ("When they differ respond to the second; in any other case do nothing.", True),
        ("Immediately point toward the stimulus when it appears.", False),
        ("Respond in the direction of the stimulus, otherwise known as the cue.", False),
        ("Respond in the direction of the stimulus.", False),
    ],
)
def test_is_conditional(text, expected):
    assert is_conditional(text) is expected


# --- user corpora and their errors ----------------------------------------------------


def small_corpus(corpus) -> dict:
    """A valid user corpus: the first train and validation sentence of each task."""
    first = corpus[corpus["sentence_id"] == 0].set_index(["task", "split"])["text"]
    return {
        "version": 1,
        "tasks": {
            task: {split: [first[task, split]] for split in ("train", "validation")}
            for task in reversed(TASKS)
        },
    }


def write(tmp_path, data, name="mine.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_user_corpus_need_not_have_15_and_5(tmp_path, corpus):
    path = write(tmp_path, small_corpus(corpus))
    table = load_corpus(path)
    assert len(table) == 100
    assert list(dict.fromkeys(table["task"])) == list(TASKS)  # canonical, not file order
    assert load_corpus(shipped_path()).equals(corpus)


def test_missing_task(tmp_path, corpus):
    data = small_corpus(corpus)
    del data["tasks"]["DNMC"]
    path = write(tmp_path, data)
    with pytest.raises(CorpusError, match=rf"{re.escape(str(path))}.*lacks tasks: DNMC"):
        load_corpus(path)


def test_unknown_task(tmp_path, corpus):
    data = small_corpus(corpus)
    data["tasks"]["AntiDMMod3"] = {"train": ["Respond later."], "validation": ["Wait a bit."]}
    path = write(tmp_path, data)
    with pytest.raises(CorpusError, match=r"mine\.yaml names unknown tasks: AntiDMMod3"):
        load_corpus(path)


def test_duplicate_sentence_across_tasks(tmp_path, corpus):
    data = small_corpus(corpus)
    original = data["tasks"]["Go"]["train"][0]
    data["tasks"]["AntiGo"]["train"].append("  " + original.upper().replace(".", "!"))
    path = write(tmp_path, data)
    with pytest.raises(CorpusError) as info:
        load_corpus(path)
    message = str(info.value)
    assert str(path) in message and "task AntiGo" in message
    assert original.upper().replace(".", "!") in message and "task Go" in message


def test_sentence_in_both_splits(tmp_path, corpus):
    data = small_corpus(corpus)
    sentence = data["tasks"]["DMS"]["train"][0]
    data["tasks"]["DMS"]["validation"].append(sentence.lower())
    path = write(tmp_path, data)
    with pytest.raises(CorpusError, match=r"task DMS .*both the train and validation"):
        load_corpus(path)


def test_malformed_yaml(tmp_path):
    path = write(tmp_path, "version: 1\ntasks: {Go: [unclosed\n")
    with pytest.raises(CorpusError, match=rf"{re.escape(str(path))} is not valid YAML"):
        load_corpus(path)


@pytest.mark.parametrize(
    "mutate, location",
    [
        (lambda d: d["tasks"]["Go"].update(train=[]), r"tasks\.Go\.train"),
        (lambda d: d["tasks"]["DM"]["validation"].append(42), r"tasks\.DM\.validation\[1\]"),
        (lambda d: d["tasks"]["DM"]["train"].append("   "), r"tasks\.DM\.train\[1\]"),
        (lambda d: d["tasks"]["COMP1"].pop("validation"), r"tasks\.COMP1.*'validation'"),
        (lambda d: d["tasks"]["COMP1"].update(test=["x"]), r"tasks\.COMP1.*'test'"),
        (lambda d: d.update(version=2), r"at version"),
        (lambda d: d.pop("tasks"), r"top level.*'tasks'"),
    ],
)
def test_schema_violation(tmp_path, corpus, mutate, location):
    data = small_corpus(corpus)
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(CorpusError, match=rf"mine\.yaml does not match the format.*{location}"):
        load_corpus(path)


def test_sentence_without_words(tmp_path, corpus):
    data = small_corpus(corpus)
    data["tasks"]["Dur1"]["train"].append("?!")
    with pytest.raises(CorpusError, match=r"task Dur1 \(train sentence 1\).*'\?!' has no words"):
        load_corpus(write(tmp_path, data))


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(CorpusError, match=r"top level"):
        load_corpus(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(CorpusError, match=r"nothere\.yaml does not exist"):
        load_corpus(tmp_path / "nothere.yaml")
