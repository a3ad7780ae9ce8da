"""A spending cap for one run that holds however many requests are in flight.

Before a request is sent, its worst-case cost (every prompt token at the dearest input rate,
the whole output allowance used, at the standard price) is reserved; when the response is
recorded the reservation is replaced by the actual cost. A request whose reservation would
pass the cap is not sent, so the spend can never pass it, even with hundreds of requests in
flight. All of this runs on the event loop's thread, so reserve/settle need no lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pipeline.money.pricing import PriceTable, TierPrice, Usage, cost_usd
from pipeline.prompts import RenderedRequest

# Our prompt-token estimate should equal the API's count; the margin covers a tokenizer or
# formatting difference so that the reservation stays an upper bound.
ESTIMATE_MARGIN = Decimal("1.05")
ESTIMATE_SLACK_TOKENS = 32


def worst_case_cost(request: RenderedRequest, prices: PriceTable) -> Decimal:
    """The most ``request`` can cost: full output allowance, standard price, and every prompt
    token at the dearest input rate.

    On GPT-5.6+ a token written to the prompt cache costs more than an uncached one (1.25x
    input), and any prompt token may be written, so each is priced at max(input, read, write).
    """
    standard = prices.price(request.model, "standard")
    dearest = max(standard.input, standard.cached_rate, standard.write_rate)
    worst = TierPrice(
        input=dearest, cached_input=dearest, output=standard.output, cache_write=dearest
    )
    prompt = int(request.prompt_tokens * ESTIMATE_MARGIN) + ESTIMATE_SLACK_TOKENS
    return cost_usd(
        Usage(input_tokens=prompt, output_tokens=request.profile.max_output_tokens), worst
    )


@dataclass
class Budget:
    """Reservations and spend against ``limit_usd``."""

    limit_usd: Decimal
    spent_usd: Decimal = Decimal(0)
    reserved_usd: Decimal = Decimal(0)
    refused: int = 0

    def reserve(self, amount: Decimal) -> bool:
        """Reserve ``amount``; False (and nothing reserved) if it would pass the limit."""
        if self.spent_usd + self.reserved_usd + amount > self.limit_usd:
            self.refused += 1
            return False
        self.reserved_usd += amount
        return True

    def settle(self, reserved: Decimal, actual: Decimal) -> None:
        """Replace a reservation by what the request actually cost."""
        self.reserved_usd -= reserved
        self.spent_usd += actual
