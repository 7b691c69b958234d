"""Order messages (issue #20, SPEC §12): the buyer and the seller of an order write to each
other; each side reads, labels and marks for itself, counts its unread messages and searches
by label; strangers are refused; operators see the messages through the order's dispute.
One test per rule; every refusal writes nothing."""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.exceptions import StarletteDeprecationWarning

import lifecycle
from lifecycle.cli import cli
from lifecycle.service import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)  # as tests/console does
    from fastapi.testclient import TestClient
from tests.builders import buyer, order_in, order_in_dispute, rows, seller

OPERATOR = lifecycle.Actor("operator", "ops")


@pytest.fixture
def order(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> lifecycle.Aggregate:
    return order_in(engine, clock, "paid")


def send(engine: lifecycle.Engine, order: lifecycle.Aggregate, who: lifecycle.Actor,
         text: str = "hello") -> lifecycle.Aggregate:
    """Send, a second after the last message: messages list by the time they were sent."""
    clock = engine.clock
    assert isinstance(clock, lifecycle.SimulatedClock)
    clock.advance(timedelta(seconds=1))
    return engine.send_message(order.id, who, text)


def refused_writes_nothing(engine: lifecycle.Engine, error: type[Exception], fn: Any,
                           match: str) -> None:
    before = rows(engine)
    with pytest.raises(error, match=match):
        fn()
    assert rows(engine) == before


# --- sending ---------------------------------------------------------------------------------


def test_a_message_is_sent_to_the_other_side_unread_with_its_history(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer(), "  Is it shipped yet?  ")

    assert (sent.kind, sent.state) == ("message", "unread")
    assert sent.data["text"] == "Is it shipped yet?"
    assert (sent.data["order"], sent.data["from"], sent.data["to"]) == (order.id, "buyer", "seller")
    assert [e.trigger for e in engine.history("message", sent.id)] == ["send"]
    assert [m.id for m in engine.messages(order.id, seller())] == [sent.id]


def test_the_other_side_counts_it_unread_and_the_sender_does_not(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    send(engine, order, buyer())
    send(engine, order, buyer())
    send(engine, order, seller())

    assert engine.unread(seller()) == lifecycle.Unread(2, {order.id: 2})
    assert engine.unread(buyer()) == lifecycle.Unread(1, {order.id: 1})


def test_reading_marks_the_other_sides_messages_read_and_resets_the_count(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    first, second = send(engine, order, buyer()), send(engine, order, buyer())
    mine = send(engine, order, seller())

    seen = engine.read_messages(order.id, seller())

    assert [m.unread for m in seen] == [False, False, False]
    assert engine.unread(seller()).total == 0
    assert engine.get("message", first.id).state == engine.get("message", second.id).state == "read"
    assert engine.get("message", mine.id).state == "unread"  # the buyer has not read it
    assert engine.unread(buyer()).total == 1


def test_the_sender_cannot_read_their_own_message(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer())

    refused_writes_nothing(engine, lifecycle.GuardFailed,
                           lambda: engine.fire("message", sent.id, "read", buyer()),
                           "message.recipient_reads")


def test_unread_counts_are_per_order(engine: lifecycle.Engine,
                                     clock: lifecycle.SimulatedClock) -> None:
    one, two = order_in(engine, clock, "paid"), order_in(engine, clock, "paid")
    send(engine, one, buyer())
    send(engine, two, buyer())
    send(engine, two, buyer())

    assert engine.unread(seller()).by_order == {one.id: 1, two.id: 2}


# --- labels and marks, per side ----------------------------------------------------------------


def test_labels_are_per_side_and_search_finds_them_across_orders(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    one, two = order_in(engine, clock, "paid"), order_in(engine, clock, "paid")
    a, b, c = send(engine, one, buyer()), send(engine, two, seller()), send(engine, two, buyer())
    engine.fire("message", a.id, "label", buyer(), {"label": "Refund"})
    engine.fire("message", b.id, "label", buyer(), {"label": "refund"})
    engine.fire("message", c.id, "label", seller(), {"label": "refund"})

    assert [m.id for m in engine.search_messages(buyer(), label="refund")] == [a.id, b.id]
    assert [m.id for m in engine.search_messages(seller(), label="refund")] == [c.id]
    assert [m.labels for m in engine.messages(two.id, buyer())] == [("refund",), ()]
    assert [m.labels for m in engine.messages(two.id, seller())] == [(), ("refund",)]


def test_a_label_taken_off_is_no_longer_found(engine: lifecycle.Engine,
                                               order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer())
    engine.fire("message", sent.id, "label", seller(), {"label": "refund"})
    engine.fire("message", sent.id, "unlabel", seller(), {"label": "refund"})

    assert engine.search_messages(seller(), label="refund") == []


def test_marks_are_per_side_and_searchable(engine: lifecycle.Engine,
                                            order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer())
    engine.fire("message", sent.id, "mark", seller(), {"mark": "starred"})
    engine.fire("message", sent.id, "label", seller(), {"label": "refund"})

    assert [m.id for m in engine.search_messages(seller(), mark="starred")] == [sent.id]
    assert [m.id for m in engine.search_messages(seller(), label="refund", mark="starred")] == [sent.id]
    assert engine.search_messages(seller(), label="refund", mark="flagged") == []
    assert engine.search_messages(buyer(), mark="starred") == []


@pytest.mark.parametrize(("label", "match"), [
    ("", "label: a label is 1 to 32"),
    ("two words", "label: a label is 1 to 32"),
    ("x" * 33, "label: a label is 1 to 32"),
    ("-refund", "label: a label is 1 to 32"),
])
def test_a_malformed_label_is_refused(engine: lifecycle.Engine, order: lifecycle.Aggregate,
                                      label: str, match: str) -> None:
    sent = send(engine, order, buyer())

    refused_writes_nothing(
        engine, lifecycle.InvalidPayload,
        lambda: engine.fire("message", sent.id, "label", buyer(), {"label": label}), match)


def test_a_search_by_a_malformed_label_is_refused(engine: lifecycle.Engine) -> None:
    with pytest.raises(lifecycle.InvalidPayload, match="label: a label is 1 to 32"):
        engine.search_messages(buyer(), label="no spaces please")


def test_the_same_label_twice_is_refused(engine: lifecycle.Engine,
                                          order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer())
    engine.fire("message", sent.id, "label", buyer(), {"label": "refund"})

    refused_writes_nothing(
        engine, lifecycle.GuardFailed,
        lambda: engine.fire("message", sent.id, "label", buyer(), {"label": "REFUND"}),
        "message.label_new")


def test_taking_off_a_label_the_side_does_not_hold_is_refused(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer())
    engine.fire("message", sent.id, "label", seller(), {"label": "refund"})  # the other side's

    refused_writes_nothing(
        engine, lifecycle.GuardFailed,
        lambda: engine.fire("message", sent.id, "unlabel", buyer(), {"label": "refund"}),
        "message.label_held")


def test_a_side_puts_at_most_the_policys_labels_on_a_message(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    engine.set_policy(engine.policy.with_overrides(message_labels_max=2))
    sent = send(engine, order, buyer())
    for label in ("a", "b"):
        engine.fire("message", sent.id, "label", buyer(), {"label": label})

    refused_writes_nothing(
        engine, lifecycle.GuardFailed,
        lambda: engine.fire("message", sent.id, "label", buyer(), {"label": "c"}),
        "message.labels_max_20.*at most 2 labels")
    engine.fire("message", sent.id, "label", seller(), {"label": "c"})  # the other side's own


def test_an_unknown_mark_is_refused(engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer())

    refused_writes_nothing(
        engine, lifecycle.InvalidPayload,
        lambda: engine.fire("message", sent.id, "mark", buyer(), {"mark": "urgent"}), "mark")


# --- who may send and read ---------------------------------------------------------------------


@pytest.mark.parametrize("stranger", [buyer("b-2"), seller("s-2")])
def test_a_stranger_may_not_send_on_the_order(engine: lifecycle.Engine,
                                               order: lifecycle.Aggregate,
                                               stranger: lifecycle.Actor) -> None:
    refused_writes_nothing(engine, lifecycle.Forbidden, lambda: send(engine, order, stranger),
                           f"{stranger.role} {stranger.id} may not send")


@pytest.mark.parametrize("stranger", [buyer("b-2"), seller("s-2")])
def test_a_stranger_may_not_read_the_orders_messages(engine: lifecycle.Engine,
                                                      order: lifecycle.Aggregate,
                                                      stranger: lifecycle.Actor) -> None:
    sent = send(engine, order, buyer())

    with pytest.raises(lifecycle.Forbidden, match="may not read messages"):
        engine.messages(order.id, stranger)
    refused_writes_nothing(engine, lifecycle.Forbidden,
                           lambda: engine.read_messages(order.id, stranger), "may not read")
    refused_writes_nothing(engine, lifecycle.Forbidden,
                           lambda: engine.fire("message", sent.id, "label", stranger,
                                               {"label": "mine"}), "is not theirs")
    assert engine.unread(lifecycle.Actor(stranger.role, stranger.id)).total == 0


def test_an_operator_reads_every_message_but_does_not_send(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    send(engine, order, buyer())
    send(engine, order, seller())

    assert [m.side for m in engine.messages(order.id, OPERATOR)] == ["buyer", "seller"]
    refused_writes_nothing(engine, lifecycle.Forbidden, lambda: send(engine, order, OPERATOR),
                           "only buyer or seller may send")


# --- what a message must be ------------------------------------------------------------------


def test_a_message_to_no_order_is_refused(engine: lifecycle.Engine) -> None:
    refused_writes_nothing(engine, lifecycle.GuardFailed,
                           lambda: engine.send_message("o-nowhere", buyer(), "hi"),
                           "message.order_exists")


def test_an_empty_message_is_refused(engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    refused_writes_nothing(engine, lifecycle.InvalidPayload, lambda: send(engine, order, buyer(), "   "),
                           "text: must not be empty")


def test_a_message_longer_than_the_policy_allows_is_refused(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    send(engine, order, buyer(), "x" * 2000)

    refused_writes_nothing(engine, lifecycle.GuardFailed,
                           lambda: send(engine, order, buyer(), "x" * 2001),
                           "message.text_max_2000.*at most 2,000 characters, got 2,001")


def test_an_ended_order_takes_messages_for_30_days(engine: lifecycle.Engine,
                                                     clock: lifecycle.SimulatedClock) -> None:
    ended = order_in(engine, clock, "cancelled")
    clock.advance(timedelta(days=30, seconds=-1))
    send(engine, ended, buyer())  # a second later: 30 days after the order ended, to the second

    refused_writes_nothing(engine, lifecycle.GuardFailed, lambda: send(engine, ended, seller()),
                           "message.within_30_days_of_end.*ended more than 30 days ago")


def test_an_operator_removes_a_message_and_its_text_is_no_longer_shown(
        engine: lifecycle.Engine, order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer(), "call me on +351 900 000 000")
    engine.fire("message", sent.id, "label", seller(), {"label": "refund"})

    engine.fire("message", sent.id, "remove", OPERATOR, {"reason": "personal data"})

    [shown] = engine.messages(order.id, seller())
    assert (shown.state, shown.text) == ("removed", None)
    assert engine.unread(seller()).total == 0
    assert engine.search_messages(seller(), label="refund") == []
    with pytest.raises(lifecycle.InvalidTransition):
        engine.fire("message", sent.id, "label", seller(), {"label": "other"})


# --- part of the order's record: the dispute shows them -----------------------------------------


def test_an_operator_sees_the_orders_messages_in_its_dispute(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, db_url: str) -> None:
    order, dispute = order_in_dispute(engine, clock)
    send(engine, order, buyer(), "it arrived broken")
    send(engine, order, seller(), "please send a photo")

    assert [m.text for m in engine.dispute_messages(dispute.id, OPERATOR)] == [
        "it arrived broken", "please send a photo"]
    shown = cli_json(db_url, "dispute", "show", dispute.id, "--as", "operator:ops")
    assert [(m["side"], m["text"]) for m in shown["messages"]] == [
        ("buyer", "it arrived broken"), ("seller", "please send a photo")]
    text = invoke(db_url, "dispute", "show", dispute.id)
    assert text.exit_code == 0, text.output
    assert "please send a photo" in text.output


def test_every_message_history_replays(engine: lifecycle.Engine,
                                       order: lifecycle.Aggregate) -> None:
    sent = send(engine, order, buyer())
    engine.fire("message", sent.id, "mark", seller(), {"mark": "flagged"})
    engine.read_messages(order.id, seller())

    assert engine.replay("message", sent.id) == "read"
    assert engine.check() == []


# --- the command line ------------------------------------------------------------------------


def invoke(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args])


def cli_json(db_url: str, *args: str) -> Any:
    result = invoke(db_url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_cli_round_trip(engine: lifecycle.Engine, order: lifecycle.Aggregate,
                            db_url: str) -> None:
    sent = cli_json(db_url, "message", "send", order.id, "--text", "where is it?", "--as", "buyer:b-1")
    cli_json(db_url, "message", "send", order.id, "--text", "on its way", "--as", "seller:s-1")

    assert cli_json(db_url, "message", "unread", "--as", "seller:s-1") == {
        "total": 1, "by_order": {order.id: 1}}
    listed = cli_json(db_url, "message", "list", order.id)
    assert [m["text"] for m in listed["items"]] == ["where is it?", "on its way"]
    read = cli_json(db_url, "message", "read", order.id, "--as", "seller:s-1")
    assert read["marked_read"] == 1
    assert cli_json(db_url, "message", "unread", "--as", "seller:s-1")["total"] == 0
    cli_json(db_url, "message", "label", sent["id"], "refund", "--as", "seller:s-1")
    cli_json(db_url, "message", "mark", sent["id"], "starred", "--as", "seller:s-1")
    found = cli_json(db_url, "message", "search", "--label", "refund", "--as", "seller:s-1")
    assert [(m["id"], m["labels"], m["marks"]) for m in found["items"]] == [
        (sent["id"], ["refund"], ["starred"])]
    assert cli_json(db_url, "message", "search", "--label", "refund", "--as", "buyer:b-1")["items"] == []
    cli_json(db_url, "message", "label", sent["id"], "refund", "--remove", "--as", "seller:s-1")
    assert cli_json(db_url, "message", "search", "--label", "refund", "--as", "seller:s-1")["items"] == []
    text = invoke(db_url, "message", "list", order.id, "--as", "buyer:b-1")
    assert "where is it?" in text.output
    assert "on its way" in text.output


def test_the_cli_refuses_in_one_line_and_writes_nothing(engine: lifecycle.Engine,
                                                        order: lifecycle.Aggregate,
                                                        db_url: str) -> None:
    before = rows(engine)
    for args, code, said in [
        (("message", "send", order.id, "--text", "hi", "--as", "buyer:b-2"), 1, "may not send"),
        (("message", "send", order.id, "--text", "x" * 2001, "--as", "buyer:b-1"), 1,
         "message.text_max_2000"),
        (("message", "send", order.id, "--text", "hi", "--as", "b-1"), 2, "ambiguous"),
        (("message", "search", "--label", "a b", "--as", "seller:s-1"), 2, "label"),
        (("message", "list", order.id, "--as", "seller:s-2"), 1, "may not read messages"),
    ]:
        result = invoke(db_url, *args)
        assert result.exit_code == code, (args, result.output)
        assert said in result.output
    assert rows(engine) == before


def test_graph_draws_the_message_machine() -> None:
    result = CliRunner().invoke(cli, ["graph", "message"])

    assert result.exit_code == 0
    assert "unread --> read: read (buyer, seller)" in result.output


# --- HTTP: the generic routes send and label; the reads have routes of their own ---------------


def test_the_http_api_sends_reads_counts_and_searches(engine: lifecycle.Engine,
                                                       order: lifecycle.Aggregate) -> None:
    def key(role: str, id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {engine.create_key(role, actor_id=id)[1]}"}

    b, s, stranger, ops = key("buyer", "b-1"), key("seller", "s-1"), key("buyer", "b-2"), key(
        "operator", "ops")
    with TestClient(create_app(engine)) as http:
        sent = http.post("/v1/messages", json={"order": order.id, "text": "hi"}, headers=b)
        assert sent.status_code == 201, sent.text
        id = sent.json()["id"]
        assert http.get("/v1/mailbox/unread", headers=s).json() == {"total": 1,
                                                                   "by_order": {order.id: 1}}
        assert http.post(f"/v1/messages/{id}/label", json={"label": "refund"},
                         headers=s).status_code == 200
        found = http.get("/v1/mailbox/search", params={"label": "refund"}, headers=s).json()
        assert [(m["id"], m["labels"]) for m in found["items"]] == [(id, ["refund"])]
        read = http.post(f"/v1/orders/{order.id}/messages/read", headers=s).json()
        assert [m["unread"] for m in read["items"]] == [False]
        assert [m["text"] for m in http.get(f"/v1/orders/{order.id}/messages",
                                            headers=ops).json()["items"]] == ["hi"]
        assert http.get(f"/v1/orders/{order.id}/messages", headers=stranger).status_code == 404
        assert http.post("/v1/messages", json={"order": order.id, "text": "hi"},
                         headers=stranger).status_code == 403
        assert http.get("/v1/mailbox/search", params={"label": "a b"},
                        headers=s).status_code == 422


# --- PostgreSQL: the lookup reads -------------------------------------------------------------


def test_postgres_finds_an_orders_messages_unread_and_labelled(
        pg_engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(pg_engine, clock, "paid")
    first = send(pg_engine, order, buyer(), "one")
    send(pg_engine, order, buyer(), "two")
    pg_engine.fire("message", first.id, "label", seller(), {"label": "refund"})

    assert [m.text for m in pg_engine.messages(order.id, seller())] == ["one", "two"]
    assert pg_engine.unread(seller()) == lifecycle.Unread(2, {order.id: 2})
    assert [m.id for m in pg_engine.search_messages(seller(), label="refund")] == [first.id]
    pg_engine.read_messages(order.id, seller())
    assert pg_engine.unread(seller()).total == 0


def test_postgres_two_processes_reading_at_once_read_each_message_once(
        pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(pg_engine, clock, "paid")
    sent = [send(pg_engine, order, buyer(), f"message {n}") for n in range(20)]
    other = lifecycle.open(pg_url, clock=clock)
    try:
        with ThreadPoolExecutor(2) as pool:
            done = list(pool.map(lambda e: e.read_messages(order.id, seller()), (pg_engine, other)))
    finally:
        other.close()

    assert all(not m.unread for seen in done for m in seen)
    for message in sent:
        assert [e.trigger for e in pg_engine.history("message", message.id)] == ["send", "read"]
    assert pg_engine.check() == []
