"""Multi-stage tasks: planning, fan-out, rollover, allocation policies, curation (scripted provider)."""

import re

import pytest
from seasoned.envs import Environment, Stage, Task, Verdict
from seasoned.graphs import Agent, parse_strategy
from seasoned.graphs.allocation import (
    AllocationError,
    DifficultyWeighted,
    Learned,
    SubtaskNeed,
    Uniform,
    make_policy,
)
from seasoned.memory import MemoryBank
from seasoned.models import Gateway, Ledger, scripted


class ChainEnv(Environment):
    """Start from a number and apply steps ("add 3", "double"); every stage is checked."""

    name = "chain"

    def __init__(self):
        self.steps = [("add", "Add 3 to the current number.", lambda v: v + 3),
                      ("double", "Double the current number.", lambda v: v * 2),
                      ("add", "Add 3 to the current number.", lambda v: v + 3)]

    def _values(self, start):
        values, value = [], start
        for _, _, fn in self.steps:
            value = fn(value)
            values.append(value)
        return values

    def tasks(self, n=None, seed=0, difficulty=None):
        return [self.get_task(f"chain-{seed + i}") for i in range(n or 1)]

    def get_task(self, task_id):
        start = int(task_id.split("-")[1]) + 5
        stages = [Stage(f"stage{i + 1}", kind, text) for i, (kind, text, _) in enumerate(self.steps)]
        return Task(task_id, self.name, f"The current number is {start}. Apply every step. Answer: <number>",
                    stages=stages, metadata={"values": self._values(start)})

    def extract_answer(self, text):
        numbers = re.findall(r"-?\d+", text)
        return numbers[-1] if numbers else None

    async def verify(self, task, answer):
        ok = self.extract_answer(answer) == str(task.metadata["values"][-1])
        return Verdict(float(ok), ok)

    async def verify_stage(self, task, index, answer):
        ok = self.extract_answer(answer) == str(task.metadata["values"][index])
        return Verdict(float(ok), ok, {"expected": task.metadata["values"][index]})


def chain_solver(wrong_on: set[str] = frozenset()):
    """Computes each step from the prompt, wrong on the step kinds in ``wrong_on`` (first sample only)."""

    def reply(messages, params):
        prompt = messages[-1]["content"]
        earlier = re.findall(r"s\d+ = (-?\d+)", prompt)
        value = int(earlier[-1]) if earlier else int(re.search(r"current number is (\d+)", prompt).group(1))
        step = prompt.split("Now do only this step:")[-1]
        result = value + 3 if "Add 3" in step else value * 2
        kind = "add" if "Add 3" in step else "double"
        if kind in wrong_on and params.get("seed", 0) % 2 == 0:
            result += 1
        return f"Answer: {result}"

    return reply


def agent_for(name, reply, tmp_path, *, memory=None, allocation="difficulty", strategy="adaptive-4", **kw):
    scripted.register(name, fn=reply)
    return Agent(gateway=Gateway(f"scripted/{name}", ledger=Ledger()), record=True, checkpoint=False,
                 db_url=f"sqlite:///{tmp_path}/runs.db", strategy=parse_strategy(strategy, seed=0),
                 allocation=allocation, memory=memory, **kw)


def test_environment_stages_are_solved_in_order_with_predecessors_in_context(tmp_path):
    env = ChainEnv()
    agent = agent_for("chain-ok", chain_solver(), tmp_path)
    task = env.get_task("chain-0")
    result = agent.run(task, env=env, budget={"max_tokens": 3000})
    assert result.plan_source == "env"
    assert [s["result"]["answer"] for s in result.subtasks] == [str(v) for v in task.metadata["values"]]
    assert all(s["result"]["verified"] for s in result.subtasks)
    assert result.verified and result.verified_by == "env:chain" and result.reward == 1.0
    assert result.answer == str(task.metadata["values"][-1])
    trace = agent.store.get_run(result.run_id)
    assert [s.id for s in trace.subtasks] == ["s1", "s2", "s3"]
    assert trace.by_subtask.keys() >= {"s1", "s2", "s3"}


def test_unspent_budget_of_a_finished_subtask_flows_on(tmp_path):
    env = ChainEnv()
    agent = agent_for("chain-rollover", chain_solver(), tmp_path, allocation="uniform")
    result = agent.run(env.get_task("chain-1"), env=env, budget={"max_tokens": 3000})
    allocations = [d for d in result.decisions if d["action"] == "allocate"]
    first, second = allocations[0]["allocations"]["s1"]["tokens"], allocations[1]["allocations"]["s2"]["tokens"]
    assert first == 1000  # a third of 3000
    assert second > first  # s1 spent far less than 1000: the rest is re-split over s2 and s3
    assert result.spend.tokens <= 3000


def test_independent_subtasks_fan_out_together_and_dependent_ones_wait(tmp_path):
    plan = ('{"subtasks": [{"id": "a", "description": "Compute 2 + 2.", "kind": "compute", "difficulty": 0.2},'
            ' {"id": "b", "description": "Compute 3 + 3.", "kind": "compute", "difficulty": 0.2},'
            ' {"id": "c", "description": "Add the two results.", "kind": "combine", "difficulty": 0.6,'
            ' "depends_on": ["a", "b"]}]}')
    seen = []

    def reply(messages, params):
        prompt = messages[-1]["content"]
        if "Split the task" in prompt:
            return plan
        seen.append(prompt)
        if "2 + 2" in prompt.split("Now do only this step:")[-1]:
            return "Answer: 4"
        if "3 + 3" in prompt.split("Now do only this step:")[-1]:
            return "Answer: 6"
        return "Answer: 10"

    agent = agent_for("fanout", reply, tmp_path, strategy="single", plan=True)
    result = agent.run("What is (2 + 2) + (3 + 3)?", budget={"max_tokens": 4000})
    assert result.plan_source == "planner"
    allocations = [d for d in result.decisions if d["action"] == "allocate"]
    assert allocations[0]["dispatched"] == ["s1", "s2"]  # independent: together
    assert allocations[1]["dispatched"] == ["s3"]
    combine_prompt = next(p for p in seen if "Add the two results" in p)
    assert "s1 = 4" in combine_prompt and "s2 = 6" in combine_prompt
    assert result.answer == "10"
    assert allocations[0]["allocations"]["s1"]["tokens"] < allocations[0]["allocations"].get(
        "s3", {"tokens": 10**9})["tokens"] if "s3" in allocations[0]["allocations"] else True


def test_unusable_plan_falls_back_to_one_subtask_and_says_why(tmp_path):
    agent = agent_for("badplan", lambda messages, params: "no idea }{", tmp_path, strategy="single", plan=True)
    result = agent.run("Do something.", budget={"max_tokens": 2000})
    assert result.plan_source == "fallback" and "unusable output" in result.plan_reason
    assert [s["description"] for s in result.subtasks] == ["Do something."]
    plan = next(e for e in agent.store.get_run(result.run_id).events if e.kind == "plan")
    assert plan.data["source"] == "fallback" and "unusable output" in plan.data["reason"]


STEPS_TASK = "First compute 12 + 7. Then multiply the result by 3. Then subtract 5. Give the final number."


@pytest.mark.parametrize("task, steps", [
    (STEPS_TASK, ["Compute 12 + 7.", "Multiply the result by 3.", "Subtract 5. Give the final number."]),
    ("First compute 12 + 7, then multiply by 3, and then subtract 5.", ["Compute 12 + 7", "Multiply by 3",
                                                                         "Subtract 5."]),
    ("I have 3 boxes. First count the apples; next add them up; finally divide by 3.",
     ["Count the apples", "Add them up", "Divide by 3."]),
    ("1. Read the file\n2. Count the lines\n3) Print the count", ["Read the file", "Count the lines", "Print the count"]),
    ("Step 1: add 2 and 3. Step 2: multiply by 4.", ["Add 2 and 3.", "Multiply by 4."]),
])
def test_a_task_written_as_steps_is_planned_into_those_steps(task, steps):
    from seasoned.agents.planner import explicit_steps

    plan = explicit_steps(task)
    assert [s.description for s in plan.subtasks] == steps
    assert [s.depends_on for s in plan.subtasks] == [[]] + [[f"s{i}"] for i in range(1, len(steps))]


@pytest.mark.parametrize("task", ["What is 2+3?", "Compute 2+3, then add 4.",
                                  "First compute the first, last and middle values.", "Then stop.",
                                  " and then " * 500, ", then" * 1000])
def test_a_task_not_written_as_steps_goes_to_the_planner(task):
    from seasoned.agents.planner import explicit_steps

    assert explicit_steps(task) is None


def test_explicit_steps_are_solved_in_order_each_with_its_allocation(tmp_path):
    def reply(messages, params):
        prompt = messages[-1]["content"]
        assert "Split the task" not in prompt  # the steps were the task's own: no planner call
        step = prompt.split("Now do only this step:")[-1]
        return {"Compute": "Answer: 19", "Multiply": "Answer: 57", "Subtract": "Answer: 52"}[step.split()[0]]

    agent = agent_for("steps", reply, tmp_path, strategy="single", plan=True)
    result = agent.run(STEPS_TASK, budget={"max_tokens": 3000}, allocation="difficulty")
    assert result.plan_source == "steps" and "3 explicit steps" in result.plan_reason
    assert [s["id"] for s in result.subtasks] == ["s1", "s2", "s3"] and result.answer == "52"
    assert all(s["allocation"]["tokens"] > 0 for s in result.subtasks)
    assert "s1 = 19" in result.subtasks[1]["result"]["prompt"]


def test_the_planner_asks_for_its_json_schema_where_the_provider_takes_one(tmp_path, monkeypatch):
    from seasoned.agents import planner

    monkeypatch.setattr(planner, "supports_response_schema", lambda model: True)
    plan = '{"subtasks": [{"id": "s1", "description": "Add 2 and 3.", "kind": "compute", "difficulty": 0.2, ' \
           '"depends_on": []}, {"id": "s2", "description": "Double it.", "kind": "compute", "difficulty": 0.3, ' \
           '"depends_on": ["s1"]}]}'
    model = scripted.register("schema-plan", fn=lambda messages, params: plan if "Split the task" in
                              messages[-1]["content"] else "Answer: 10")
    agent = Agent("scripted/schema-plan", strategy="single", plan=True, db_url=f"sqlite:///{tmp_path}/r.db",
                  checkpoint=False, curate=False)
    result = agent.run("Add 2 and 3 and double the sum.", budget={"max_tokens": 3000})
    asked = [params for messages, params in model.seen if "Split the task" in messages[-1]["content"]]
    assert asked[0]["response_format"]["json_schema"]["name"] == "plan"
    assert result.plan_source == "planner" and len(result.subtasks) == 2
    agent.close()


def test_uniform_and_difficulty_policies():
    needs = [SubtaskNeed("s1", "a", 0.0), SubtaskNeed("s2", "b", 0.75)]
    uniform = Uniform().allocate(needs, 1000)
    assert [uniform["s1"].tokens, uniform["s2"].tokens] == [500, 500]
    weighted = DifficultyWeighted().allocate(needs, 1000)
    assert weighted["s1"].tokens == 200 and weighted["s2"].tokens == 800
    assert "difficulty" in weighted["s2"].reason
    with pytest.raises(AllocationError):
        make_policy("random")


def test_learned_policy_gives_budget_where_it_raises_success():
    records = []
    for budget in (100, 200, 400, 800):
        for i in range(4):
            # "easy" succeeds once it has 100 tokens; "hard" needs 600
            records.append({"subtask_kind": "easy", "budget": {"tokens": budget}, "spent": {"tokens": 80},
                            "success": True})
            records.append({"subtask_kind": "hard", "budget": {"tokens": budget},
                            "spent": {"tokens": min(budget, 600)}, "success": budget >= 600})
    policy = Learned(lambda: records, seed=1)
    needs = [SubtaskNeed("s1", "easy", 0.5), SubtaskNeed("s2", "hard", 0.5)]
    allocation = policy.allocate(needs, 1000)
    assert allocation["s2"].tokens >= 600
    assert allocation["s1"].tokens >= 80
    assert "learned" in allocation["s2"].reason and allocation["s2"].expected_success > 0.5
    difficulty_split = DifficultyWeighted().allocate(needs, 1000)
    assert difficulty_split["s2"].tokens < 600  # equal difficulty estimates would starve the hard kind


def test_learned_policy_explores_kinds_with_thin_records():
    policy = Learned(lambda: [{"subtask_kind": "new", "budget": {"tokens": 100}, "spent": {"tokens": 50},
                               "success": True}], seed=3)
    allocation = policy.allocate([SubtaskNeed("s1", "new", 0.5), SubtaskNeed("s2", "other", 0.5)], 1000)
    assert all(a.reason.startswith("exploring") for a in allocation.values())
    assert allocation["s1"].tokens != 500  # jittered, so records cover several budgets


def test_learned_policy_picks_the_model_that_succeeds_per_kind():
    records = []
    for i in range(6):
        records.append({"subtask_kind": "code", "budget": {"tokens": 500}, "spent": {"tokens": 300},
                        "success": True, "model": "scripted/big"})
        records.append({"subtask_kind": "code", "budget": {"tokens": 500}, "spent": {"tokens": 500},
                        "success": False, "model": "scripted/small"})
    policy = Learned(lambda: records)
    allocation = policy.allocate([SubtaskNeed("s1", "code", 0.5)], 600, models=["scripted/small", "scripted/big"])
    assert allocation["s1"].model == "scripted/big"


def test_curation_writes_items_and_allocation_records_and_learned_reads_them(tmp_path):
    bank = MemoryBank.open(f"sqlite:///{tmp_path}/mem.db", namespace="chain", chroma_path=str(tmp_path / "chroma"))
    try:
        env = ChainEnv()
        agent = agent_for("chain-curate", chain_solver(wrong_on={"double"}), tmp_path, memory=bank,
                          allocation="learned", namespace="chain")
        result = agent.run(env.get_task("chain-2"), env=env, budget={"max_tokens": 3000})
        assert result.verified
        assert result.curation["allocation_records"] == 3
        kinds = {item.kind for item in bank.list()}
        assert {"strategy", "lesson", "allocation"} <= kinds  # worked examples, a contrast, the records
        lessons = [item for item in bank.list(kinds=["lesson"])]
        assert any("Rejected answers" in item.content for item in lessons)  # accepted vs rejected, contrasted
        records = bank.allocations()
        assert {r["subtask_kind"] for r in records} == {"add", "double"}
        assert all(r["success"] for r in records)
        # a second run retrieves what the first one learned
        again = agent.run(env.get_task("chain-3"), env=env, budget={"max_tokens": 3000})
        assert again.memory_ids
    finally:
        bank.close()


def test_learned_policy_does_not_throw_good_compute_after_bad():
    records = [{"subtask_kind": "impossible", "budget": {"tokens": b}, "spent": {"tokens": b}, "success": False}
               for b in (100, 300, 600, 900) for _ in range(3)]
    records += [{"subtask_kind": "easy", "budget": {"tokens": b}, "spent": {"tokens": 50}, "success": True}
                for b in (100, 300) for _ in range(4)]
    allocation = Learned(lambda: records).allocate(
        [SubtaskNeed("s1", "easy", 0.2), SubtaskNeed("s2", "impossible", 0.9)], 1000)
    assert allocation["s1"].tokens + allocation["s2"].tokens <= 300  # one attempt's worth each, not 1000


def test_a_plan_that_repeats_a_step_keeps_it_once():
    from seasoned.agents.planner import Plan, Subtask, sanitize

    repeated = Plan(subtasks=[Subtask(id="a", description="Computing"), Subtask(id="b", description=" computing "),
                              Subtask(id="c", description="Add them.", depends_on=["a", "b"])])
    plan = sanitize(repeated, "task")
    assert [(s.id, s.description, s.depends_on) for s in plan.subtasks] == [("s1", "Computing", []),
                                                                             ("s2", "Add them.", ["s1"])]
