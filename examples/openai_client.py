"""The OpenAI client against `seasoned serve`: test-time scaling and memory behind a base URL.

    seasoned serve --port 8000 &          # the embedded model by default (--model to change it)
    python examples/openai_client.py      # SEASONED_URL to point elsewhere

The model field is ``[STRATEGY:]MODEL``: a bare model name is one plain call (the server's default
strategy, ``single`` unless ``seasoned serve --strategy`` says otherwise), ``best_of_n-2:MODEL`` two samples
(plus a judge call when their answers differ). The reply is a standard chat completion plus a ``seasoned``
field (run id, verified, spend); feedback that arrives later credits the memory items the run used.
"""

import os

import httpx
from openai import OpenAI

URL = os.environ.get("SEASONED_URL", "http://127.0.0.1:8000")
KEY = os.environ.get("SEASONED_API_KEY", "anything-on-loopback")

client = OpenAI(base_url=f"{URL}/v1", api_key=KEY)
model = client.models.list().data[0].id  # the server's default model
# Two samples (about twice the tokens of one call; a judge call more if they disagree):
reply = client.chat.completions.create(
    model=f"best_of_n-2:{model}",
    messages=[{"role": "user", "content": "What is 17 + 25? End with 'Answer: <number>'."}],
    extra_body={"seasoned": {"budget": {"max_tokens": 4000}}},
)
run = reply.model_extra["seasoned"]
print(f"reply: {reply.choices[0].message.content!r}")
print(f"run {run['run_id']}: verified={run['verified']} tokens={reply.usage.total_tokens}")

# A bare model name: one plain call, as from OpenAI; stop and response_format are honoured too.
for chunk in client.chat.completions.create(model=model, stream=True, stop=["\n\n"],
                                            messages=[{"role": "user", "content": "Say hello."}]):
    if chunk.choices and chunk.choices[0].delta.content:
        print(f"streamed: {chunk.choices[0].delta.content!r}")

feedback = httpx.post(f"{URL}/v1/runs/{run['run_id']}/feedback", json={"success": True},
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
print(f"feedback: {feedback.status_code} {feedback.json()}")
