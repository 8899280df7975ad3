"""The Python API in one script: a run, an environment's check, memory, multi-stage work, feedback, resume.

    python examples/python_api.py        # SEASONED_MODEL picks the model (default: the embedded one)
"""

from seasoned.envs import get_env
from seasoned.graphs import Agent
from seasoned.memory import MemoryBank

agent = Agent(strategy="adaptive", budget={"max_tokens": 2000})  # model: SEASONED_MODEL, else local/smollm2-135m
result = agent.run("What is 17 + 25?")          # await agent.arun(...); for event in agent.stream(...)
print(result.answer, result.verified, result.confidence, result.spend.tokens, result.spend.by_role)

env = get_env("addition")                        # the environment's own check verifies candidates
task = env.tasks(n=1, difficulty=2)[0]
print(task.id, "->", agent.run(task, env=env).verified)

bank = MemoryBank.open(namespace="math")         # SQL (SQLite or SEASONED_DB_URL) + Chroma
agent = Agent(memory=bank, namespace="math", allocation="learned", budget={"max_tokens": 3000})
sums = get_env("sums")
staged = agent.run(sums.tasks(n=1)[0], env=sums)  # multi-stage: plan, allocate, solve, curate
print(staged.answer, staged.stop_reason)           # e.g. "2 subtask(s), 1 verified"
agent.feedback(staged.run_id, success=False)     # outcomes that arrive later credit memory and verifiers

for event in agent.stream("What is 12 + 30?"):  # leaving the loop early interrupts the run...
    break
resumed = agent.resume(event.run_id)             # ...which continues from its checkpoint
print(resumed.run_id == event.run_id, resumed.answer, resumed.memory)  # memory: channel used and why
node = agent.as_subgraph()                       # a node for your own LangGraph graph: examples/langgraph_subgraph.py
agent.close()
