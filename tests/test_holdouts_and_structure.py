"""Holdout schemes and task structure as data (METHODS §2–3)."""

import pytest

from instructnet.tasks import (
    CONDITIONAL_TASKS,
    HOLDOUTS,
    STRUCTURE,
    TASKS,
    compositional_references,
    held_out,
    holdout_registry,
    training_tasks,
)
from instructnet.tasks.holdouts import swapped_instruction_task


def test_task_list():
    assert len(TASKS) == 50 == len(set(TASKS))
    assert len(CONDITIONAL_TASKS) == 30


@pytest.mark.parametrize("scheme, count", [("swap", 10), ("family", 12)])
def test_schemes_partition_the_tasks(scheme, count):
    groups = [HOLDOUTS[f"{scheme}{i}"] for i in range(count)]
    flat = [t for g in groups for t in g]
    assert sorted(flat) == sorted(TASKS)
    if scheme == "swap":
        assert all(len(g) == 5 for g in groups)


def test_training_tasks():
    assert len(training_tasks("swap9")) == 45
    assert "AntiDMMod1" not in training_tasks("swap9")
    assert training_tasks("multitask") == TASKS
    assert held_out("family3") == ("DM", "AntiDM", "MultiDM", "AntiMultiDM", "ConDM", "ConAntiDM")


def test_custom_holdouts():
    reg = holdout_registry({"pair": ["Go", "AntiGo"]})
    assert reg["pair"] == ("Go", "AntiGo")
    assert training_tasks("pair", {"pair": ["Go", "AntiGo"]})[0] == "RTGo"


def test_swapped_instructions_are_cyclic():
    group = HOLDOUTS["swap0"]
    mapped = [swapped_instruction_task(t, "swap0") for t in group]
    assert mapped == list(group[1:]) + [group[0]]


def test_structure_vectors_distinct():
    assert len({STRUCTURE[t] for t in TASKS}) == 50


@pytest.mark.parametrize("task", TASKS)
def test_compositional_references_satisfy_identity(task):
    a, b, c = compositional_references(task)
    assert len({task, a, b, c}) == 4
    combo = tuple(x - y + z for x, y, z in zip(STRUCTURE[a], STRUCTURE[b], STRUCTURE[c]))
    assert combo == STRUCTURE[task]
