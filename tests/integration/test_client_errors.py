"""A live node's refusals reach the caller as the core error they stand for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from client.api import MatchClient
from demo.synthetic import make_lists
from psi.errors import BudgetExceededError, NotFoundError, PermissionDeniedError, RemoteError, StaleStateError
from psi.messages import Mode
from tests.conftest import LiveNode

LISTS = make_lists(60, 40, 10, seed=43)
AGREEMENTS = """
[partners.agency-a]
lists = ["wanted-persons"]
modes = ["intersection"]
budget_per_epoch = 20
"""
StartNode = Callable[..., LiveNode]
Connect = Callable[..., MatchClient]


def test_a_stale_epoch_is_a_stale_state_error(start_node: StartNode, client_for: Connect) -> None:
    client = client_for(start_node(LISTS.b, partners=(), extra=AGREEMENTS))
    params = client.parameters()
    with pytest.raises(StaleStateError) as stale:  # as if the partner rotated its key after our GetParameters
        client.fetch_tags(replace(params, key_epoch=params.key_epoch + 1), Mode.INTERSECTION)
    assert isinstance(stale.value, RemoteError) and stale.value.status == "ABORTED"
    assert "epoch" in stale.value.details


def test_a_used_up_budget_is_a_budget_exceeded_error(start_node: StartNode, client_for: Connect) -> None:
    client = client_for(start_node(LISTS.b, partners=(), extra=AGREEMENTS))
    with pytest.raises(BudgetExceededError) as spent:
        client.match(LISTS.a, purpose="p", case_reference="c")  # more keys than the 20 of its budget
    assert isinstance(spent.value, RemoteError) and spent.value.status == "RESOURCE_EXHAUSTED"
    assert "budget" in spent.value.details


def test_refusals_keep_their_kind(start_node: StartNode, client_for: Connect) -> None:
    live = start_node(LISTS.b, partners=(), extra=AGREEMENTS)
    with pytest.raises(PermissionDeniedError):  # cardinality is outside agency-a's agreement
        client_for(live).match(LISTS.a[:2], purpose="p", case_reference="c", mode=Mode.CARDINALITY)
    with pytest.raises(NotFoundError):
        client_for(live).parameters("no-such-list")
