"""Holdout schemes of METHODS §3 as data, selectable by name.

``swap0``..``swap9``: ten groups of five tasks (the main result); ``family0``..
``family11``: blocks of related tasks; ``multitask``: nothing held out; ``nocon``:
ConDM and ConAntiDM (the Con threshold stage's reference model). Users may add
groups (``custom_holdouts`` in the config), validated against the task list.
"""

from __future__ import annotations

from collections.abc import Mapping

from .constants import TASKS, UnknownTaskError, check_task

SWAP_GROUPS: tuple[tuple[str, ...], ...] = (
    ("AntiDMMod2", "RTGo", "DM", "MultiCOMP2", "AntiMultiDur1"),
    ("COMP1Mod1", "AntiGoMod2", "DMS", "AntiDur1", "RTGoMod2"),
    ("RTGoMod1", "AntiCOMP2", "AntiRTGo", "Dur2", "MultiCOMP1"),
    ("GoMod2", "AntiMultiCOMP2", "DMMod2", "AntiRTGoMod1", "AntiDur2"),
    ("MultiDM", "COMP2Mod2", "AntiMultiCOMP1", "AntiGoMod1", "Dur1Mod1"),
    ("AntiDM", "AntiRTGoMod2", "Dur2Mod2", "AntiCOMP1", "DNMS"),
    ("MultiDur1", "GoMod1", "COMP2", "DMC", "Dur2Mod1"),
    ("COMP2Mod1", "AntiMultiDM", "DNMC", "DMMod1", "Dur1Mod2"),
    ("ConAntiDM", "COMP1", "MultiDur2", "COMP1Mod2", "Go"),
    ("AntiGo", "Dur1", "ConDM", "AntiDMMod1", "AntiMultiDur2"),
)

FAMILY_GROUPS: tuple[tuple[str, ...], ...] = (
    ("Go", "AntiGo", "RTGo", "AntiRTGo"),
    ("GoMod1", "GoMod2", "AntiGoMod1", "AntiGoMod2"),
    ("RTGoMod1", "RTGoMod2", "AntiRTGoMod1", "AntiRTGoMod2"),
    ("DM", "AntiDM", "MultiDM", "AntiMultiDM", "ConDM", "ConAntiDM"),
    ("DMMod1", "AntiDMMod1", "DMMod2", "AntiDMMod2"),
    ("COMP1", "COMP2", "MultiCOMP1", "MultiCOMP2"),
    ("AntiCOMP1", "AntiCOMP2", "AntiMultiCOMP1", "AntiMultiCOMP2"),
    ("COMP1Mod1", "COMP2Mod1", "COMP1Mod2", "COMP2Mod2"),
    ("Dur1", "Dur2", "MultiDur1", "MultiDur2"),
    ("AntiDur1", "AntiDur2", "AntiMultiDur1", "AntiMultiDur2"),
    ("Dur1Mod1", "Dur2Mod1", "Dur1Mod2", "Dur2Mod2"),
    ("DMS", "DNMS", "DMC", "DNMC"),
)

HOLDOUTS: dict[str, tuple[str, ...]] = {f"swap{i}": g for i, g in enumerate(SWAP_GROUPS)}
HOLDOUTS.update({f"family{i}": g for i, g in enumerate(FAMILY_GROUPS)})
HOLDOUTS["multitask"] = ()
# The reference SIMPLENET of the ConDM/ConAntiDM threshold stage trains on the 48 others.
HOLDOUTS["nocon"] = ("ConDM", "ConAntiDM")


class UnknownHoldoutError(ValueError):
    """A holdout name that is neither built in nor defined in the config."""


def holdout_registry(custom: Mapping[str, list[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """The built-in groups plus validated user groups."""
    registry = dict(HOLDOUTS)
    for name, tasks in (custom or {}).items():
        if name in HOLDOUTS:
            raise UnknownHoldoutError(
                f"custom holdout {name!r} would shadow the built-in group of that name"
            )
        try:
            group = tuple(check_task(t) for t in tasks)
        except UnknownTaskError as exc:
            raise UnknownTaskError(f"custom holdout {name!r}: {exc}") from None
        if len(set(group)) != len(group):
            raise ValueError(f"custom holdout {name!r} lists a task twice")
        if len(group) >= len(TASKS):
            raise ValueError(f"custom holdout {name!r} holds out every task")
        registry[name] = group
    return registry


def held_out(name: str, custom: Mapping[str, list[str]] | None = None) -> tuple[str, ...]:
    """Tasks held out by the group ``name``."""
    registry = holdout_registry(custom)
    if name not in registry:
        raise UnknownHoldoutError(
            f"unknown holdout {name!r}; expected swap0..swap9, family0..family11, "
            f"multitask or a name under custom_holdouts ({', '.join(custom or {}) or 'none'})"
        )
    return registry[name]


def training_tasks(name: str, custom: Mapping[str, list[str]] | None = None) -> tuple[str, ...]:
    """Tasks a model of holdout group ``name`` trains on, in canonical order."""
    out = set(held_out(name, custom))
    return tuple(t for t in TASKS if t not in out)


def swapped_instruction_task(task: str, name: str, custom=None) -> str:
    """The task whose instructions ``task`` receives in the swapped-instructions test:
    the next member of its holdout group, cyclically."""
    group = held_out(name, custom)
    if task not in group:
        raise ValueError(f"task {task!r} is not held out in {name!r}")
    return group[(group.index(task) + 1) % len(group)]
