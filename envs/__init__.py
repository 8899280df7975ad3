"""Task environments with one interface: reasoning, code, SWE repositories, web pages.

    from seasoned.envs import get_env, list_envs
    env = get_env("game24")
    task = env.tasks(n=5, seed=0, difficulty=2)[0]       # or env.get_task("game24-d2-1")
    verdict = await env.verify(task, model_text)          # Verdict(reward 0..1, passed, details)
    env.extract_answer(model_text)                        # normalized answer, for majority voting

Interactive environments (``env.interactive``: ``swe``, ``miniwob``) are acted in::

    session = await env.open(task)        # its own git worktree / browser page
    session.observation()                 # Observation(text, done, reward, info)
    session.tools                         # [ToolSpec]: what actions it offers
    obs = await session.step(Action("view", {"path": "pkg/core.py"}))
    verdict = await session.verify()      # tests / page reward
    session.close()

and ``env.verify(task, answer)`` still works on them (SWE: ``answer`` is a unified diff, applied to a
fresh checkout). ``seasoned.agents.actor.run_actor`` runs one acting episode on any environment.

Interface
  Task(id, env, prompt, stages: list[Stage] | None, difficulty, metadata)   - metadata is never shown
  Stage(name, kind, description)
  Verdict(reward: float 0..1, passed: bool, details: str | dict)
  Environment: name, description, interactive, tasks(n=None, seed=0, difficulty=None), get_task(id),
               async verify(task, answer), extract_answer(text), async open(task) -> Session, close()
  Session: task, tools, observation(), async step(action), async verify(), answer(), close()
  get_env(name, **options), list_envs(), register_env(name, factory); bad input raises EnvError.

Environments: addition, arithmetic, game24, sums and wordproblems (multi-stage), humaneval, swe, miniwob.
"""

from seasoned.errors import EnvError
from seasoned.tools.actions import Action, ToolSpec

from .base import Environment, Observation, Session, Stage, Task, Verdict
from .registry import get_env, list_envs, register_env

__all__ = ["Action", "EnvError", "Environment", "Observation", "Session", "Stage", "Task", "ToolSpec",
           "Verdict", "get_env", "list_envs", "register_env"]
