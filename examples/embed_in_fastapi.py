"""An app of your own that embeds an Agent: one Agent for the app's lifetime, closed on shutdown.

    uvicorn examples.embed_in_fastapi:app        # from the repository root, or:
    python examples/embed_in_fastapi.py          # asks one question through the app in-process

The agent checks answers with the app's own function and learns in its own memory namespace;
``POST /feedback`` passes a user's verdict on an earlier answer back to the agent.
"""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel
from seasoned.graphs import Agent


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
    app.state.agent = Agent(os.environ.get("SEASONED_MODEL", "local/smollm2-135m"), namespace="my-app",
                            strategy="adaptive-4", budget={"max_tokens": 3000}, checker=ends_with_a_number)
    yield
    await app.state.agent.aclose()  # the checkpoint connection and the run store


app = FastAPI(lifespan=lifespan)


@app.post("/ask")
async def ask(question: Question) -> dict:
    result = await app.state.agent.arun(question.text)
    return {"answer": result.answer, "verified": result.verified, "run_id": result.run_id,
            "tokens": result.spend.tokens}


@app.post("/feedback")
async def feedback(item: Feedback) -> dict:
    return app.state.agent.feedback(item.run_id, success=item.success)


if __name__ == "__main__":
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        answer = client.post("/ask", json={"text": "What is 6 * 7? End with 'Answer: <number>'."}).json()
        print(f"ask: {answer}")
        print(f"feedback: {client.post('/feedback', json={'run_id': answer['run_id'], 'success': True}).json()}")
