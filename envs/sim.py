"""A simulated environment for the ``sim/`` provider: tasks with latent success probabilities and a checker.

    from seasoned.envs.sim import SimEnv
    from seasoned.models import sim
    world = sim.register(sim.mixed_world())       # the model sim/mixed; get_env("sim") uses it too
    env = SimEnv(world, stages=(2, 3))
    task = env.tasks(n=1, seed=0)[0]          # task.stages: one per stage, each with its kind
    env.latent(task)                          # [(p, tokens per sample), ...]: what the oracle knows

Every stage's description carries the simulator's tag, so the subtask prompt names its (sub)task and kind;
a single-stage task's ``difficulty`` is its kind's rank by mean success (1: the easiest), as an environment
with difficulty levels would say;
``verify_stage`` checks a stage's answer, ``verify`` the last stage's. A task succeeds end to end when every
stage is verified (the stages are independent: a chain with a wrong link is a failed task).
"""

from __future__ import annotations

import random
import re

from seasoned.errors import EnvError
from seasoned.models import sim

from .base import Environment, Stage, Task, Verdict

_NUMBER = re.compile(r"-?\d+")
PROMPT_TOKENS_GUESS = 20  # what a stage's prompt adds to each sample, roughly (the oracle's cost per sample)


class SimEnv(Environment):
    """Tasks of ``stages`` (a count, or a (low, high) range) stages, kinds drawn with ``weights``."""

    name = "sim"
    description = "simulated tasks with latent per-sample success probabilities (sim/ provider)"
    stages_self_contained = False  # chained: a stage sees the earlier results (its own tag comes last)

    def __init__(self, world: sim.SimWorld | None = None, *, stages: int | tuple[int, int] = (1, 3),
                 weights: dict[str, float] | None = None):
        if world is None:  # ``get_env("sim")``: the benchmarks' mixed world, as model ``sim/mixed``
            try:
                world = sim.get("mixed")
            except sim.ModelConfigError:
                world = sim.register(sim.mixed_world())
        self.world = world
        low, high = (stages, stages) if isinstance(stages, int) else stages
        if not 1 <= low <= high:
            raise EnvError(f"sim env: stages must be >= 1 (a count or a (low, high) range), got {stages}")
        self.stage_range = (low, high)
        self.weights = weights or {kind: 1.0 for kind in world.kinds}
        unknown = set(self.weights) - set(world.kinds)
        if unknown:
            raise EnvError(f"sim env: weights name kinds the world lacks: {', '.join(sorted(unknown))}")

    def _make(self, task_id: str) -> Task:
        match = re.fullmatch(r"sim-(\d+)-(\d+)", task_id or "")
        if not match:
            raise self.unknown_task(task_id, ["sim-0-0", "sim-0-1"])
        draw = random.Random(f"{self.world.seed}:{task_id}")
        count = draw.randint(*self.stage_range)
        kinds = draw.choices(list(self.weights), weights=list(self.weights.values()), k=count)
        stages = []
        for index, kind in enumerate(kinds):
            stage_id = f"{task_id}/s{index + 1}"
            stages.append(Stage(name=f"s{index + 1}", kind=kind, difficulty=round(1 - self.world.kind(kind).mean, 3),
                                description=f"{sim.task_tag(stage_id, kind)} Solve step {index + 1}."))
        prompt = stages[-1].description if count == 1 else " ".join(s.description for s in stages)
        by_mean = sorted(self.world.kinds, key=lambda k: -self.world.kind(k).mean)
        return Task(id=task_id, env=self.name, prompt=prompt, stages=stages if count > 1 else None,
                    difficulty=by_mean.index(kinds[0]) + 1 if count == 1 else None,
                    metadata={"stage_ids": [f"{task_id}/s{i + 1}" for i in range(count)], "kinds": kinds})

    def tasks(self, n: int | None = None, seed: int = 0, difficulty: int | None = None) -> list[Task]:
        return [self._make(f"sim-{seed}-{i}") for i in range(20 if n is None else n)]

    def get_task(self, task_id: str) -> Task:
        return self._make(task_id)

    def latent(self, task: Task) -> list[tuple[float, int]]:
        """Per stage: the latent per-sample success probability and the completion tokens per sample."""
        return [(self.world.p(sid, kind), self.world.kind(kind).tokens)
                for sid, kind in zip(task.metadata["stage_ids"], task.metadata["kinds"])]

    def extract_answer(self, text: str) -> str | None:
        numbers = _NUMBER.findall((text or "").split("Answer:")[-1])
        return numbers[-1] if numbers else None

    def _check(self, task: Task, index: int, text: str) -> Verdict:
        want = self.world.answer(task.metadata["stage_ids"][index], task.metadata["kinds"][index])
        got = self.extract_answer(text)
        ok = got == want
        return Verdict(float(ok), ok, {"extracted": got, "expected": want, "stage": index})

    async def verify(self, task: Task, answer: str) -> Verdict:
        return self._check(task, len(task.metadata["kinds"]) - 1, answer)

    async def verify_stage(self, task: Task, stage_index: int, answer: str) -> Verdict:
        if not 0 <= stage_index < len(task.metadata["kinds"]):
            raise EnvError(f"task {task.id!r} has no stage {stage_index}")
        return self._check(task, stage_index, answer)
