"""An app of your own that embeds an Agent: one Agent and one memory bank for the app's lifetime, closed on
shutdown.

    uvicorn examples.embed_in_fastapi:app        # from the repository root, or:
    python examples/embed_in_fastapi.py          # asks the same question twice through the app in-process

The agent checks answers with the app's own function and learns in its own memory namespace: a reply that
passed the check is kept as a demonstration, and the same question asked again is answered from it (checked
again, at no model cost). ``GET /memory`` shows what the app has learned; ``POST /feedback`` passes a user's
verdict on an earlier answer back to the agent.
"""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel
from seasoned.graphs import Agent
from seasoned.memory import MemoryBank


class Question(BaseModel):
    text: str


class Feedback(BaseModel):
    run_id: str
    success: bool


def ends_with_a_number(reply: str) -> bool:  # the app's own check of a candidate's whole reply
    words = reply.split()
    return bool(words) and words[-1].lstrip("-").replace(".", "", 1).isdigit()


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.memory = MemoryBank.open(namespace="my-app")  # SQL + vector index under SEASONED_HOME
    app.state.agent = Agent(os.environ.get("SEASONED_MODEL", "local/smollm2-135m"), memory=app.state.memory,
                            namespace="my-app", strategy="adaptive-4", budget={"max_tokens": 3000},
                            checker=ends_with_a_number)
    yield
    await app.state.agent.aclose()  # the checkpoint connection and the run store
    app.state.memory.close()


app = FastAPI(lifespan=lifespan)


@app.post("/ask")
async def ask(question: Question) -> dict:
    result = await app.state.agent.arun(question.text)
    return {"answer": result.answer, "verified": result.verified, "run_id": result.run_id,
            "tokens": result.spend.tokens, "from_memory": result.memory.get("cache_hit", False)}


@app.get("/memory")
async def memory() -> dict:
    stats = app.state.memory.stats()
    return {"items": stats["active"], "by_kind": stats["by_kind"], "verified": stats["verified"]}


@app.post("/feedback")
async def feedback(item: Feedback) -> dict:
    return app.state.agent.feedback(item.run_id, success=item.success)


if __name__ == "__main__":
    from fastapi.testclient import TestClient

    question = {"text": "What is 6 * 7? End with 'Answer: <number>'."}
    with TestClient(app) as client:
        first = client.post("/ask", json=question).json()
        print(f"ask: {first}")
        print(f"learned: {client.get('/memory').json()}")
        again = client.post("/ask", json=question).json()
        print(f"ask again: {again}")
        print(f"feedback: {client.post('/feedback', json={'run_id': again['run_id'], 'success': True}).json()}")
