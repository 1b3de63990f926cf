"""The task set of METHODS §1–2 as data: names, families, structure vectors.

Everything here is a constant of the study. The canonical task order is the order of
``TASKS``; every table, figure and tensor axis that enumerates tasks uses it.
"""

from __future__ import annotations

# --- trial geometry (§1) ---------------------------------------------------------
N_STEPS = 150  # time steps of 20 ms
DT_MS = 20
N_RING = 32  # units per ring (each modality, and the response ring)
N_MODALITIES = 2
N_INPUTS = 1 + N_MODALITIES * N_RING  # 65: fixation, modality 1, modality 2
N_OUTPUTS = 1 + N_RING  # 33: fixation output, response ring

# --- the 50 tasks -----------------------------------------------------------------
FAMILIES: dict[str, tuple[str, ...]] = {
    "Go": (
        "Go", "AntiGo", "RTGo", "AntiRTGo", "GoMod1", "AntiGoMod1", "GoMod2",
        "AntiGoMod2", "RTGoMod1", "AntiRTGoMod1", "RTGoMod2", "AntiRTGoMod2",
    ),
    "DM": (
        "DM", "AntiDM", "MultiDM", "AntiMultiDM", "DMMod1", "AntiDMMod1", "DMMod2",
        "AntiDMMod2", "ConDM", "ConAntiDM",
    ),
    "COMP": (
        "COMP1", "COMP2", "MultiCOMP1", "MultiCOMP2", "AntiCOMP1", "AntiCOMP2",
        "AntiMultiCOMP1", "AntiMultiCOMP2", "COMP1Mod1", "COMP2Mod1", "COMP1Mod2",
        "COMP2Mod2",
    ),
    "Dur": (
        "Dur1", "Dur2", "MultiDur1", "MultiDur2", "AntiDur1", "AntiDur2",
        "AntiMultiDur1", "AntiMultiDur2", "Dur1Mod1", "Dur2Mod1", "Dur1Mod2", "Dur2Mod2",
    ),
    "Matching": ("DMS", "DNMS", "DMC", "DNMC"),
}
TASKS: tuple[str, ...] = tuple(t for fam in FAMILIES.values() for t in fam)
TASK_INDEX: dict[str, int] = {t: i for i, t in enumerate(TASKS)}
FAMILY_OF: dict[str, str] = {t: fam for fam, ts in FAMILIES.items() for t in ts}

# Tasks whose instructions have an "if ... otherwise ..." form (30); the rest (20)
# are simple imperatives.
CONDITIONAL_TASKS: frozenset[str] = frozenset(
    FAMILIES["COMP"] + FAMILIES["Dur"] + FAMILIES["Matching"] + ("ConDM", "ConAntiDM")
)
IMPERATIVE_TASKS: frozenset[str] = frozenset(TASKS) - CONDITIONAL_TASKS

# --- STRUCTURENET task structure vectors (§2) --------------------------------------
STRUCTURE_AXES: tuple[str, ...] = (
    "pro/anti", "standard/RT", "mod1/mod2", "strongest/weakest", "multi", "con",
    "first/second", "longest/shortest", "match/non-match", "stimulus/category",
)
STRUCTURE: dict[str, tuple[int, ...]] = {
    "Go": (1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
    "AntiGo": (-1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
    "RTGo": (1, -1, 0, 0, 0, 0, 0, 0, 0, 0),
    "AntiRTGo": (-1, -1, 0, 0, 0, 0, 0, 0, 0, 0),
    "GoMod1": (1, 1, 1, 0, 0, 0, 0, 0, 0, 0),
    "AntiGoMod1": (-1, 1, 1, 0, 0, 0, 0, 0, 0, 0),
    "GoMod2": (1, 1, -1, 0, 0, 0, 0, 0, 0, 0),
    "AntiGoMod2": (-1, 1, -1, 0, 0, 0, 0, 0, 0, 0),
    "RTGoMod1": (1, -1, 1, 0, 0, 0, 0, 0, 0, 0),
    "AntiRTGoMod1": (-1, -1, 1, 0, 0, 0, 0, 0, 0, 0),
    "RTGoMod2": (1, -1, -1, 0, 0, 0, 0, 0, 0, 0),
    "AntiRTGoMod2": (-1, -1, -1, 0, 0, 0, 0, 0, 0, 0),
    "DM": (0, 0, 0, 1, 0, 0, 0, 0, 0, 0),
    "AntiDM": (0, 0, 0, -1, 0, 0, 0, 0, 0, 0),
    "MultiDM": (0, 0, 0, 1, 1, 0, 0, 0, 0, 0),
    "AntiMultiDM": (0, 0, 0, -1, 1, 0, 0, 0, 0, 0),
    "DMMod1": (0, 0, 1, 1, 0, 0, 0, 0, 0, 0),
    "AntiDMMod1": (0, 0, 1, -1, 0, 0, 0, 0, 0, 0),
    "DMMod2": (0, 0, -1, 1, 0, 0, 0, 0, 0, 0),
    "AntiDMMod2": (0, 0, -1, -1, 0, 0, 0, 0, 0, 0),
    "ConDM": (0, 0, 0, 1, 0, 1, 0, 0, 0, 0),
    "ConAntiDM": (0, 0, 0, -1, 0, 1, 0, 0, 0, 0),
    "COMP1": (0, 0, 0, 1, 0, 0, 1, 0, 0, 0),
    "COMP2": (0, 0, 0, 1, 0, 0, -1, 0, 0, 0),
    "MultiCOMP1": (0, 0, 0, 1, 1, 0, 1, 0, 0, 0),
    "MultiCOMP2": (0, 0, 0, 1, 1, 0, -1, 0, 0, 0),
    "AntiCOMP1": (0, 0, 0, -1, 0, 0, 1, 0, 0, 0),
    "AntiCOMP2": (0, 0, 0, -1, 0, 0, -1, 0, 0, 0),
    "AntiMultiCOMP1": (0, 0, 0, -1, 1, 0, 1, 0, 0, 0),
    "AntiMultiCOMP2": (0, 0, 0, -1, 1, 0, -1, 0, 0, 0),
    "COMP1Mod1": (0, 0, 1, 1, 0, 0, 1, 0, 0, 0),
    "COMP2Mod1": (0, 0, 1, 1, 0, 0, -1, 0, 0, 0),
    "COMP1Mod2": (0, 0, -1, 1, 0, 0, 1, 0, 0, 0),
    "COMP2Mod2": (0, 0, -1, 1, 0, 0, -1, 0, 0, 0),
    "Dur1": (0, 0, 0, 0, 0, 0, 1, 1, 0, 0),
    "Dur2": (0, 0, 0, 0, 0, 0, -1, 1, 0, 0),
    "MultiDur1": (0, 0, 0, 0, 1, 0, 1, 1, 0, 0),
    "MultiDur2": (0, 0, 0, 0, 1, 0, -1, 1, 0, 0),
    "AntiDur1": (0, 0, 0, 0, 0, 0, 1, -1, 0, 0),
    "AntiDur2": (0, 0, 0, 0, 0, 0, -1, -1, 0, 0),
    "AntiMultiDur1": (0, 0, 0, 0, 1, 0, 1, -1, 0, 0),
    "AntiMultiDur2": (0, 0, 0, 0, 1, 0, -1, -1, 0, 0),
    "Dur1Mod1": (0, 0, 1, 0, 0, 0, 1, 1, 0, 0),
    "Dur2Mod1": (0, 0, 1, 0, 0, 0, -1, 1, 0, 0),
    "Dur1Mod2": (0, 0, -1, 0, 0, 0, 1, 1, 0, 0),
    "Dur2Mod2": (0, 0, -1, 0, 0, 0, -1, 1, 0, 0),
    "DMS": (0, 0, 0, 0, 0, 0, 0, 0, 1, 1),
    "DNMS": (0, 0, 0, 0, 0, 0, 0, 0, -1, 1),
    "DMC": (0, 0, 0, 0, 0, 0, 0, 0, 1, -1),
    "DNMC": (0, 0, 0, 0, 0, 0, 0, 0, -1, -1),
}


# --- tasks that analyses are defined on (METHODS §7) --------------------------------
# CCGP: the eight dichotomies, in METHODS order; pairs are (side A, side B), side A is
# +1 and side B −1 on the structure axis of the dichotomy's name.
DICHOTOMIES: dict[str, tuple[tuple[str, str], ...]] = {
    "pro/anti": (
        ("Go", "AntiGo"), ("GoMod1", "AntiGoMod1"), ("GoMod2", "AntiGoMod2"),
        ("RTGo", "AntiRTGo"), ("RTGoMod1", "AntiRTGoMod1"), ("RTGoMod2", "AntiRTGoMod2"),
    ),
    "standard/RT": (
        ("Go", "RTGo"), ("GoMod1", "RTGoMod1"), ("GoMod2", "RTGoMod2"),
        ("AntiGo", "AntiRTGo"), ("AntiGoMod1", "AntiRTGoMod1"), ("AntiGoMod2", "AntiRTGoMod2"),
    ),
    "strongest/weakest": (
        ("DM", "AntiDM"), ("DMMod1", "AntiDMMod1"), ("DMMod2", "AntiDMMod2"),
        ("MultiDM", "AntiMultiDM"), ("ConDM", "ConAntiDM"), ("COMP1", "AntiCOMP1"),
        ("COMP2", "AntiCOMP2"), ("MultiCOMP1", "AntiMultiCOMP1"),
        ("MultiCOMP2", "AntiMultiCOMP2"),
    ),
    "longest/shortest": (
        ("Dur1", "AntiDur1"), ("Dur2", "AntiDur2"), ("MultiDur1", "AntiMultiDur1"),
        ("MultiDur2", "AntiMultiDur2"),
    ),
    "first/second": (
        ("Dur1", "Dur2"), ("AntiDur1", "AntiDur2"), ("MultiDur1", "MultiDur2"),
        ("AntiMultiDur1", "AntiMultiDur2"), ("Dur1Mod1", "Dur2Mod1"), ("Dur1Mod2", "Dur2Mod2"),
        ("COMP1", "COMP2"), ("MultiCOMP1", "MultiCOMP2"), ("AntiCOMP1", "AntiCOMP2"),
        ("AntiMultiCOMP1", "AntiMultiCOMP2"), ("COMP1Mod1", "COMP2Mod1"),
        ("COMP1Mod2", "COMP2Mod2"),
    ),
    "match/non-match": (("DMS", "DNMS"), ("DMC", "DNMC")),
    "stimulus/category": (("DNMS", "DNMC"), ("DMS", "DMC")),
    "mod1/mod2": (
        ("GoMod1", "GoMod2"), ("AntiGoMod1", "AntiGoMod2"), ("RTGoMod1", "RTGoMod2"),
        ("AntiRTGoMod1", "AntiRTGoMod2"), ("DMMod1", "DMMod2"), ("AntiDMMod1", "AntiDMMod2"),
        ("COMP1Mod1", "COMP1Mod2"), ("COMP2Mod1", "COMP2Mod2"), ("Dur1Mod1", "Dur1Mod2"),
        ("Dur2Mod1", "Dur2Mod2"),
    ),
}
# Figure 3a-d: the four tasks of the PCA panels (AntiDMMod1 is held out in swap9).
PCA_TASKS: tuple[str, ...] = ("DMMod1", "AntiDMMod1", "DMMod2", "AntiDMMod2")
# Figure 4: the tasks each single-unit analysis compares (its illustrated unit is
# chosen from these; "go" also draws every other Go-family task present).
UNIT_TASKS: dict[str, tuple[str, ...]] = {
    "go": ("Go", "AntiGo"),
    "matching": ("DMS", "DNMS", "DMC", "DNMC"),
    "dm": ("DM", "AntiDM"),
    "comp": ("COMP1", "COMP2"),
}
# The Con tasks, whose (noise, contrast) thresholds come from a table or a derivation
# that probes DM and AntiDM with a SIMPLENET trained without them (METHODS §2).
CON_TASKS: tuple[str, ...] = ("ConDM", "ConAntiDM")
CON_PROBES: dict[str, str] = {"ConDM": "DM", "ConAntiDM": "AntiDM"}


def compositional_references(task: str, among=None) -> tuple[str, str, str]:
    """Three tasks A, B, C of ``task``'s family with v(task) = v(A) - v(B) + v(C).

    Derived from the structure table (never from a hand-written list, which is how
    the reference implementation came to hold an inconsistent triple). Among all
    valid triples of distinct tasks other than ``task`` the first in canonical order
    is returned, so the choice is deterministic. ``among`` (e.g. a model's training
    tasks) restricts A, B, C to those tasks; when every task of the unrestricted
    triple is among them, the same triple is returned. ValueError if none exists.
    """
    check_task(task)
    family = FAMILIES[FAMILY_OF[task]]
    target = STRUCTURE[task]
    allowed = None if among is None else set(among)
    others = [t for t in family if t != task and (allowed is None or t in allowed)]
    for a in others:
        for b in others:
            for c in others:
                if len({a, b, c}) < 3:
                    continue
                combo = tuple(
                    x - y + z for x, y, z in zip(STRUCTURE[a], STRUCTURE[b], STRUCTURE[c])
                )
                if combo == target:
                    return a, b, c
    where = "" if among is None else " among the given tasks"
    raise ValueError(f"no compositional triple exists for task {task!r}{where}")


class UnknownTaskError(ValueError):
    """A task name that is not one of the 50 tasks."""


def check_task(task: str) -> str:
    if task not in TASK_INDEX:
        raise UnknownTaskError(
            f"unknown task {task!r}; expected one of the 50 task names, e.g. "
            f"{', '.join(TASKS[:4])}, ... (see instructnet.tasks.TASKS)"
        )
    return task


def check_tasks(tasks) -> list[str]:
    return [check_task(t) for t in tasks]
