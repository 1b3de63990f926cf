"""A study's task set (config key ``tasks``) and what applies to it.

The paper's study uses all 50 tasks (``tasks: all``, the default). A study may use
fewer: ``tasks`` is then a list of task names and ``family:<name>`` entries
(``family:Go`` = the 12 Go-family tasks; family names are Go, DM, COMP, Dur, Matching;
the prefix is needed because ``Go`` and ``DM`` are also task names). The study's tasks
are kept in canonical order (``TASKS``) whatever the order of the list.

Everything the workflow makes restricts itself to the study's tasks. The decisions,
all taken here so that the rules stay thin and are testable without Snakemake:

* Trial pools: one per study task.
* Holdout groups: every task a group holds out must be in the study, else
  :class:`StudyError` naming the missing ones (groups are never silently shrunk, so
  a group name means the same tasks in every study; built-in groups such as
  ``swap9`` therefore fit only studies that contain their tasks — define groups of
  the study's tasks under ``custom_holdouts``). A model of a group trains on the
  study's tasks minus the held-out ones; at least one must remain.
* Combined rule vectors: a held-out task's references A, B, C
  (v = v(A) − v(B) + v(C)) must be tasks the model trained on. The canonical triple
  of :func:`~instructnet.tasks.constants.compositional_references` is used when all
  three were trained; otherwise the first valid triple among the trained tasks;
  a task with none is left out of that test.
* CCGP: the dichotomies' pairs whose two tasks are in the study; a dichotomy with
  fewer than two such pairs is dropped.
* Clause analysis (Figure 2f): needs conditional and imperative tasks in the study.
* Panels defined on fixed tasks (PCA, Figure 3a–d; the Figure 4 panels) and the CCGP
  and clause panels are made only where their tasks are in the study
  (:meth:`Study.figure_applies`); asked for anyway, they fail with StudyError.
* Production tasks and ``figures.task_examples``: must be in the study (production
  ``all`` = the study's tasks; task examples default to the first study task of each
  family).
* Con thresholds: needed only when ConDM or ConAntiDM is in the study; ``derived``
  needs both (the reference SIMPLENET is the ``nocon`` group) and DM, AntiDM (the
  tasks its sweep probes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .constants import (
    CON_PROBES,
    CON_TASKS,
    CONDITIONAL_TASKS,
    DICHOTOMIES,
    FAMILIES,
    IMPERATIVE_TASKS,
    PCA_TASKS,
    TASK_INDEX,
    TASKS,
    UNIT_TASKS,
    UnknownTaskError,
    check_task,
    compositional_references,
)
from .holdouts import HOLDOUTS, UnknownHoldoutError, holdout_registry

ALL = "all"
FAMILY_PREFIX = "family:"

# Figure panels that are defined on fixed tasks.
FIGURE_TASKS: dict[str, tuple[str, ...]] = {
    "fig3ad_pca": PCA_TASKS,
    "fig4a_go_tuning": UNIT_TASKS["go"],
    "fig4b_matching": UNIT_TASKS["matching"],
    "fig4c_dm_contrast": UNIT_TASKS["dm"],
    "fig4d_comp": UNIT_TASKS["comp"],
}
CCGP_FIGURES = ("fig3e_ccgp_zero_shot", "fig3f_ccgp_layers")
CLAUSE_FIGURES = ("fig2f_clause",)


class StudyError(ValueError):
    """Something the config asks for that the study's task set cannot provide."""


def parse_tasks(spec=ALL) -> tuple[str, ...]:
    """The tasks of a ``tasks`` config value, in canonical order.

    ``spec``: ``"all"`` (or None) for the 50 tasks, or a list of task names and
    ``family:<name>`` entries. Unknown names and tasks named twice raise."""
    if spec is None or spec == ALL:
        return TASKS
    if isinstance(spec, str) or not isinstance(spec, Sequence) or not spec:
        raise StudyError(f"tasks must be 'all' or a non-empty list of task names, got {spec!r}")
    chosen: list[str] = []
    for entry in spec:
        if not isinstance(entry, str):
            raise StudyError(f"tasks: entries must be task names, got {entry!r}")
        if entry.startswith(FAMILY_PREFIX):
            family = entry[len(FAMILY_PREFIX):]
            if family not in FAMILIES:
                raise StudyError(f"tasks: unknown task family {family!r} in {entry!r}; "
                                 f"families: {', '.join(FAMILIES)}")
            chosen.extend(FAMILIES[family])
        else:
            try:
                chosen.append(check_task(entry))
            except UnknownTaskError as exc:
                hint = (f" (for the family write '{FAMILY_PREFIX}{entry}')"
                        if entry in FAMILIES and entry not in TASK_INDEX else "")
                raise UnknownTaskError(f"tasks: {exc}{hint}") from None
    twice = sorted({t for t in chosen if chosen.count(t) > 1}, key=TASK_INDEX.get)
    if twice:
        raise StudyError(f"tasks: {', '.join(twice)} named more than once "
                         "(directly or through a family:<name> entry)")
    return tuple(t for t in TASKS if t in set(chosen))


def _names(tasks) -> str:
    return ", ".join(tasks)


class Study:
    """The task set of a study and the decisions of the module docstring."""

    def __init__(self, tasks=ALL, custom_holdouts: Mapping[str, Sequence[str]] | None = None):
        self.tasks: tuple[str, ...] = parse_tasks(tasks)
        self.custom_holdouts = dict(custom_holdouts or {})
        self.registry = holdout_registry(self.custom_holdouts)
        self._set = frozenset(self.tasks)

    @classmethod
    def from_config(cls, config: Mapping) -> Study:
        return cls(config.get("tasks", ALL), config.get("custom_holdouts") or {})

    @property
    def full(self) -> bool:
        """Whether the study uses all 50 tasks."""
        return len(self.tasks) == len(TASKS)

    def __contains__(self, task) -> bool:
        return task in self._set

    def __repr__(self) -> str:
        return f"Study({'all 50 tasks' if self.full else list(self.tasks)})"

    # -- requirements ------------------------------------------------------------------
    def missing(self, tasks) -> list[str]:
        """The tasks of ``tasks`` that are not in the study (in the given order)."""
        return [t for t in tasks if t not in self._set]

    def require(self, tasks, what: str) -> None:
        """StudyError (one line, naming them) if any of ``tasks`` is not in the study."""
        out = self.missing(tasks)
        if out:
            raise StudyError(f"{what} needs tasks that are not in the study: {_names(out)} "
                             "(set by `tasks` in the config)")

    # -- holdout groups ----------------------------------------------------------------
    def fits(self, holdout: str) -> bool:
        """Whether ``holdout`` is a known group whose held-out tasks are all in the study
        and which leaves at least one task to train on."""
        group = self.registry.get(holdout)
        return group is not None and not self.missing(group) and len(group) < len(self.tasks)

    def held_out(self, holdout: str, key: str | None = None) -> tuple[str, ...]:
        """The tasks ``holdout`` holds out, checked against the study. ``key`` (the config
        key that named the group) prefixes the message."""
        where = f"{key}: " if key else ""
        if holdout not in self.registry:
            raise UnknownHoldoutError(
                f"{where}unknown holdout group {holdout!r}; expected swap0..swap9, "
                "family0..family11, multitask, nocon or a name under custom_holdouts "
                f"({', '.join(self.custom_holdouts) or 'none'})")
        group = self.registry[holdout]
        out = self.missing(group)
        if out:
            raise StudyError(
                f"{where}holdout group {holdout!r} holds out tasks that are not in the study: "
                f"{_names(out)} (define a group of the study's tasks under custom_holdouts)")
        if len(group) >= len(self.tasks):
            raise StudyError(f"{where}holdout group {holdout!r} holds out every task of the study")
        return group

    def training_tasks(self, holdout: str) -> tuple[str, ...]:
        """The tasks a model of ``holdout`` trains on: the study's others, canonical order."""
        out = set(self.held_out(holdout))
        return tuple(t for t in self.tasks if t not in out)

    def builtin_holdouts(self, prefix: str) -> list[str]:
        """The built-in groups named ``<prefix><i>`` (swap, family) that fit the study."""
        return [h for h in HOLDOUTS if h.startswith(prefix) and h[len(prefix):].isdigit()
                and self.fits(h)]

    # -- evaluation ----------------------------------------------------------------------
    def combined_references(self, task: str, holdout: str) -> tuple[str, str, str] | None:
        """The references A, B, C of held-out ``task`` in the combined-vector test of a
        model of ``holdout`` (see the module docstring), or None if no triple of its
        training tasks exists."""
        return references_among(task, self.training_tasks(holdout))

    def evaluation_tasks(self, holdout: str, test: str) -> list[str]:
        """The tasks an evaluation test scores for a model of ``holdout``: the model's
        training tasks for ``validation`` (every study task for ``multitask``, the paper's
        condition; its instructions were never seen in training either way); the
        held-out tasks otherwise (``combined``: those that have references among the
        training tasks)."""
        if test == "validation":
            return list(self.training_tasks(holdout))
        group = self.held_out(holdout)
        if test == "combined":
            return [t for t in group if self.combined_references(t, holdout) is not None]
        return list(group)

    # -- analyses ------------------------------------------------------------------------
    def dichotomies(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """The CCGP dichotomies restricted to the study: pairs of study tasks, dichotomies
        with at least two of them."""
        out = {}
        for name, pairs in DICHOTOMIES.items():
            kept = tuple((a, b) for a, b in pairs if a in self._set and b in self._set)
            if len(kept) >= 2:
                out[name] = kept
        return out

    def clause_groups(self) -> tuple[list[str], list[str]]:
        """(conditional, imperative) study tasks, canonical order (Figure 2f)."""
        return ([t for t in self.tasks if t in CONDITIONAL_TASKS],
                [t for t in self.tasks if t in IMPERATIVE_TASKS])

    def figure_applies(self, name: str) -> bool:
        """Whether a figure panel can be made in this study: fixed-task panels need their
        tasks, CCGP panels a dichotomy, the clause panel both kinds of task."""
        if name in FIGURE_TASKS:
            return not self.missing(FIGURE_TASKS[name])
        if name in CCGP_FIGURES:
            return bool(self.dichotomies())
        if name in CLAUSE_FIGURES:
            return all(self.clause_groups())
        return True

    def require_figure(self, name: str) -> None:
        """StudyError if :meth:`figure_applies` is false, saying why."""
        if self.figure_applies(name):
            return
        if name in FIGURE_TASKS:
            self.require(FIGURE_TASKS[name], name)
        if name in CCGP_FIGURES:
            raise StudyError(f"{name} needs a CCGP dichotomy with two pairs of study tasks; "
                             "the study has none")
        conditional, imperative = self.clause_groups()
        kind = "imperative" if conditional else "conditional"
        raise StudyError(f"{name} compares conditional with imperative tasks, and the study "
                         f"has no {kind} task")

    # -- other task lists from the config ------------------------------------------------
    def production_tasks(self, spec=ALL) -> list[str]:
        """Tasks of ``production.tasks`` (``all``: the study's), checked."""
        if spec is None or spec == ALL:
            return list(self.tasks)
        tasks = [check_task(t) for t in spec]
        self.require(tasks, "production.tasks")
        return tasks

    def example_task(self, spec: str | None, production_tasks: Sequence[str]) -> str:
        """``production.example_task`` (unset: AntiDMMod1 if produced, else the first
        production task), checked."""
        if spec is None:
            return "AntiDMMod1" if "AntiDMMod1" in production_tasks else production_tasks[0]
        check_task(spec)
        if spec not in production_tasks:
            raise StudyError(f"production.example_task {spec!r} is not one of the production "
                             f"tasks ({_names(production_tasks)})")
        return spec

    def task_examples(self, spec: Sequence[str] | None = None) -> list[str]:
        """Tasks of the task_examples figure: ``figures.task_examples`` (checked) or, unset,
        the first study task of each family."""
        if spec is None:
            return [next(t for t in fam if t in self._set)
                    for fam in FAMILIES.values() if any(t in self._set for t in fam)]
        tasks = [check_task(t) for t in spec]
        self.require(tasks, "figures.task_examples")
        return tasks

    # -- Con thresholds ------------------------------------------------------------------
    @property
    def con_tasks(self) -> list[str]:
        """ConDM/ConAntiDM as far as they are in the study."""
        return [t for t in CON_TASKS if t in self._set]

    def check_con_derivation(self) -> None:
        """StudyError unless the study can derive the Con thresholds itself."""
        needed = [*CON_TASKS, *CON_PROBES.values()]
        self.require(needed, "trials.con_thresholds 'derived' (use a threshold table instead)")


def references_among(task: str, trained: Sequence[str]) -> tuple[str, str, str] | None:
    """Compositional references of ``task`` among the tasks ``trained``: the canonical
    triple when all three are among them (the first valid triple in canonical order is
    the canonical one then), else the first valid triple of trained tasks; None if
    there is none."""
    try:
        return compositional_references(task, among=trained)
    except ValueError:
        return None
