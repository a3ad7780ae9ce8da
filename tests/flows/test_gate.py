"""The token gate's blocks: slots of 1,000 tokens, never more than the limit at once."""

from __future__ import annotations

from flows.gate import PrefectTokenGate, open_token_gate


def test_tokens_become_slots_rounded_up() -> None:
    """2,001 tokens take three 1,000-token slots; nothing takes no slots."""
    gate = PrefectTokenGate("limit", slots=100)
    assert gate.slots_for(2_001) == [3]
    assert gate.slots_for(0) == []
    assert gate.slots_for(-5) == []


def test_a_block_larger_than_the_limit_is_taken_in_limit_sized_pieces() -> None:
    """A block can never wait forever for more slots than the limit has."""
    gate = PrefectTokenGate("limit", slots=4)
    assert gate.slots_for(9_500) == [4, 4, 2]


def test_no_limit_name_means_no_gate() -> None:
    """An empty ``token_limit`` parameter turns the gate off without asking the server."""
    assert open_token_gate(None) is None
    assert open_token_gate("") is None
