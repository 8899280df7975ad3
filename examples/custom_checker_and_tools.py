"""A plain Python function as the checker and plain Python functions as tools.

    python examples/custom_checker_and_tools.py        # SEASONED_MODEL picks the model (default: embedded)

The agent answers by acting: it may call the tools (their schema comes from the type hints and
docstrings), then gives its answer; the checker judges each candidate answer. A model with tool calling
gets the tools as tools; the embedded model is asked for each action as JSON constrained to the tools'
schema (a llama.cpp grammar), so every reply is an action; `seasoned runs show` lists every turn.
"""

import os

from seasoned.graphs import Agent

PRICES = {"apple": 0.5, "pear": 0.75, "melon": 3.0}
SYSTEM_PROMPT = "You are a shop assistant. Use the tools, then answer with a number only."
TASK = "How much do 3 apples cost?"


def price(fruit: str) -> float:
    """The price of one fruit, in euros.

    Args:
        fruit: the fruit's name, e.g. apple
    """
    return PRICES[fruit.strip().lower()]


def multiply(a: float, b: float) -> float:
    """a times b."""
    return a * b


def is_right(answer: str) -> bool:  # sync or async; returns a bool, a reward in 0..1 or a Verdict
    return answer.strip().rstrip("€").strip() in ("1.5", "1.50")


def main() -> None:
    agent = Agent(os.environ.get("SEASONED_MODEL", "local/smollm2-135m"), system_prompt=SYSTEM_PROMPT,
                  tools=[price, multiply], checker=is_right, strategy="adaptive-4", budget={"max_tokens": 6000})
    result = agent.run(TASK)
    print(f"answer: {result.answer!r}  verified: {result.verified}  tokens: {result.spend.tokens}")
    for turn in (result.candidates[0].get("trajectory") or []) if result.candidates else []:
        print(f"  {turn['action'] or 'no action: ' + (turn['error'] or '')[:60]} -> {turn['observation'][:60]}")
    print(f"trace: seasoned runs show {result.run_id}")
    agent.close()


if __name__ == "__main__":
    main()
