"""One gateway for every model call: budgets as hard caps, the ledger, and parallel samples that race.

    python examples/gateway.py        # SEASONED_MODEL picks the model (default: the embedded one)
"""

import asyncio

from seasoned.models import Budget, Gateway, Ledger


async def main() -> None:
    gw = Gateway(ledger=Ledger())  # SEASONED_MODEL, else local/smollm2-135m; its own ledger (default: shared)
    reply = await gw.acomplete("What is 17 + 25?", max_tokens=32, seed=1, budget=Budget(max_tokens=2_000))
    print(f"reply: {reply.text!r}")                    # gw.complete(...) is the same, synchronous
    async with gw.samples("What is 17 + 25?", 8, seed=0, max_tokens=32) as stream:  # 8 calls, in parallel
        async for sample in stream:                                                # as they finish
            if "42" in getattr(sample, "text", ""):
                print(f"a sample says 42: {sample.text!r}")
                break                                  # the rest are cancelled, and still accounted
    totals = gw.ledger.totals()
    print(f"calls: {totals.calls}  tokens: {totals.tokens}")


asyncio.run(main())
