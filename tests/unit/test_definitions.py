"""A machine definition is checked when it is built: a bad one fails loudly; and the real ones
are the SPEC's machines, state for state, arrow for arrow (with its roles), deadline for deadline.

No database: these build `MachineDefinition` objects directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import lifecycle
from lifecycle.machines import DEFINITIONS
from lifecycle.machines.definition import Deadline, MachineDefinition, Transition

SELLER, SYSTEM = frozenset({"seller"}), frozenset({"system"})


def _always(ctx: Any) -> bool:
    return True


def _later(policy: Any, data: Any) -> timedelta:
    return timedelta(days=1)


CREATE = Transition("create", (), "draft", SELLER)
PUBLISH = Transition("publish", ("draft",), "live", SELLER)
EXPIRE = Transition("expire", ("live",), "ended", SYSTEM)
END = Transition("end", ("draft", "live"), "ended", SELLER)
GOOD: dict[str, Any] = {
    "states": ("draft", "live", "ended"),
    "terminal": frozenset({"ended"}),
    "transitions": (CREATE, PUBLISH, EXPIRE, END),
    "owners": {"seller": lambda id, data: data["seller"]},
    "new_id": lambda actor: "c-1",
    "deadlines": (Deadline("live", "expire", _later),),
}


def build(**changes: Any) -> MachineDefinition:
    return MachineDefinition("coupon", **{**GOOD, **changes})


def refused(**changes: Any) -> str:
    """The `DefinitionError` message of the good definition with ``changes``."""
    with pytest.raises(lifecycle.DefinitionError) as error:
        build(**changes)
    assert "coupon" in str(error.value)
    return str(error.value)


def test_a_sound_definition_builds() -> None:
    definition = build()

    assert definition.initial == "draft"
    assert set(definition.triggers_from("live")) == {"expire", "end"}
    assert definition.step("draft", "publish") is not None
    assert definition.step("ended", "publish") is None


def test_unreachable_state_is_refused() -> None:
    message = refused(states=("draft", "live", "archived", "ended"),
                      transitions=(CREATE, PUBLISH, EXPIRE, END,
                                   Transition("purge", ("archived",), "ended", SELLER)))

    assert "unreachable" in message
    assert "archived" in message


def test_state_that_cannot_reach_a_terminal_state_is_refused() -> None:
    message = refused(states=("draft", "live", "stuck", "ended"),
                      transitions=(CREATE, PUBLISH, EXPIRE, END,
                                   Transition("jam", ("draft",), "stuck", SELLER),
                                   Transition("spin", ("stuck",), "stuck", SELLER)))

    assert "cannot reach a terminal state" in message
    assert "stuck" in message


def test_definition_without_terminal_state_is_refused() -> None:
    message = refused(terminal=frozenset(), transitions=(
        CREATE, PUBLISH, EXPIRE, END, Transition("reopen", ("ended",), "draft", SELLER)))

    assert "no terminal state" in message


def test_transition_with_no_roles_is_refused() -> None:
    message = refused(transitions=(CREATE, Transition("publish", ("draft",), "live", frozenset()),
                                   EXPIRE, END))

    assert "publish has no role" in message


def test_transition_with_an_unknown_role_is_refused() -> None:
    message = refused(transitions=(CREATE, Transition("publish", ("draft",), "live",
                                                      frozenset({"admin"})), EXPIRE, END))

    assert "'admin'" in message


def test_owner_of_an_unknown_role_is_refused() -> None:
    message = refused(owners={"merchant": lambda id, data: id})

    assert "'merchant'" in message


def test_deadline_on_a_trigger_not_defined_from_its_state_is_refused() -> None:
    message = refused(deadlines=(Deadline("draft", "expire", _later),))

    assert "deadline expire on draft" in message


def test_deadline_whose_trigger_system_may_not_fire_is_refused() -> None:
    message = refused(deadlines=(Deadline("live", "end", _later),))

    assert "deadline end on live" in message
    assert "system may not fire it" in message


def test_deadline_on_an_unknown_state_is_refused() -> None:
    message = refused(deadlines=(Deadline("paused", "expire", _later),))

    assert "'paused'" in message


@pytest.mark.parametrize(("transition", "unknown"), [
    pytest.param(Transition("publish", ("drafted",), "live", SELLER), "drafted", id="source"),
    pytest.param(Transition("publish", ("draft",), "published", SELLER), "published", id="dest"),
])
def test_transition_naming_an_unknown_state_is_refused(transition: Transition, unknown: str) -> None:
    message = refused(transitions=(CREATE, transition, EXPIRE, END))

    assert f"publish names unknown state {unknown!r}" in message


def test_creating_transition_to_an_unknown_state_is_refused() -> None:
    message = refused(transitions=(Transition("create", (), "new", SELLER), PUBLISH, EXPIRE, END))

    assert "unknown state 'new'" in message


def test_state_listed_twice_is_refused() -> None:
    message = refused(states=("draft", "live", "draft", "ended"))

    assert "listed twice" in message


@pytest.mark.parametrize("creating", [
    pytest.param((), id="none"),
    pytest.param((CREATE, Transition("import", (), "live", SYSTEM)), id="two"),
])
def test_definition_needs_exactly_one_creating_transition(
    creating: tuple[Transition, ...]
) -> None:
    message = refused(transitions=(*creating, PUBLISH, EXPIRE, END))

    assert "exactly one creating transition" in message


def test_transition_leaving_a_terminal_state_is_refused() -> None:
    message = refused(transitions=(CREATE, PUBLISH, EXPIRE, END,
                                   Transition("revive", ("ended",), "live", SELLER)))

    assert "leaves terminal state ended" in message


def test_internal_trigger_fired_by_anyone_but_system_is_refused() -> None:
    message = refused(transitions=(CREATE, PUBLISH, EXPIRE, END,
                                   Transition("sync", ("live",), "live", SELLER, internal=True)))

    assert "internal trigger sync" in message


def test_routes_of_one_trigger_that_differ_in_roles_are_refused() -> None:
    message = refused(transitions=(
        CREATE, EXPIRE, END,
        Transition("publish", ("draft",), "live", SELLER, when=_always),
        Transition("publish", ("draft",), "ended", SYSTEM),
    ))

    assert "routes of publish from draft differ" in message


def test_unconditional_route_before_another_is_refused() -> None:
    message = refused(transitions=(
        CREATE, EXPIRE, END,
        Transition("publish", ("draft",), "live", SELLER),
        Transition("publish", ("draft",), "ended", SELLER, when=_always),
    ))

    assert "unconditional route" in message


def test_routes_of_one_trigger_lead_to_each_of_their_destinations() -> None:
    definition = build(transitions=(
        CREATE, EXPIRE, END,
        Transition("publish", ("draft",), "live", SELLER, when=_always),
        Transition("publish", ("draft",), "ended", SELLER),
    ))

    step = definition.step("draft", "publish")
    assert step is not None
    assert step.dests == ("live", "ended")


# --- the real machines, against the SPEC written out by hand ---------------------------------
#
# Each machine as SPEC §3-§6 (and the issues that added a machine) describe it, one arrow a
# line: ``trigger | sources | destination | roles``. ``-`` as the sources marks the creating
# arrow, ``=`` as the destination a recorded event that keeps the state, ``follow-up`` as the
# roles an internal trigger (fired by the system, only as another aggregate's follow-up).
# Written independently of lifecycle/machines/: a change to a machine must change this too,
# on purpose. Where the code goes beyond the SPEC's words it is noted.


@dataclass(frozen=True)
class Spec:
    states: frozenset[str]
    initial: str
    terminal: frozenset[str]
    arrows: str
    deadlines: frozenset[tuple[str, str]]  # (state entered, trigger it schedules)
    continuing: frozenset[tuple[str, str, str]] = frozenset()  # (state, trigger, carried from)
    pausing: frozenset[str] = frozenset()
    public: frozenset[str] = frozenset()


def states(text: str) -> frozenset[str]:
    return frozenset(text.split())


SPEC = {
    # SPEC §3. "Operators approve, reject, suspend and reinstate; sellers do the rest"; an
    # operator may also close an account; fee_lapse is the timer of "fee_expired".
    "seller": Spec(
        states=states("registered under_review authentication_rejected authenticated fee_paid "
                      "active suspended fee_expired closed"),
        initial="registered",
        terminal=states("closed"),
        arrows="""
            register                | -                       | registered              | seller
            submit_documents        | registered              | under_review            | seller
            approve                 | under_review            | authenticated           | operator
            reject                  | under_review            | authentication_rejected | operator
            resubmit                | authentication_rejected | under_review            | seller
            pay_fee                 | authenticated           | fee_paid                | seller
            complete_profile        | fee_paid                | active                  | seller
            suspend                 | active                  | suspended               | operator
            reinstate               | suspended               | active                  | operator
            fee_lapse               | active                  | fee_expired             | system
            renew_fee               | fee_expired             | active                  | seller
            close                   | registered, under_review, authentication_rejected,
                                      authenticated, fee_paid, active, suspended,
                                      fee_expired             | closed                  | seller, operator
        """,
        deadlines=frozenset({("active", "fee_lapse")}),
    ),
    # SPEC §4. Carrier tracking moves shipped -> in_transit -> delivered (pushed by the system,
    # or entered by an operator); an exception is recorded; a scan that moves nothing is
    # recorded in any state a parcel can still be scanned in. The payment callback pays as the
    # system; a carrier's pickup scan confirms the pickup as the system.
    "order": Spec(
        states=states("awaiting_payment paid cancel_requested awaiting_pickup shipped in_transit "
                      "delivered in_dispute completed funds_released cancelled refunded"),
        initial="awaiting_payment",
        terminal=states("funds_released cancelled refunded"),
        arrows="""
            place                  | -                                 | awaiting_payment | buyer
            pay                    | awaiting_payment                  | paid             | buyer, system
            cancel                 | awaiting_payment                  | cancelled        | buyer, operator
            payment_timeout        | awaiting_payment                  | cancelled        | system
            request_cancel         | paid                              | cancel_requested | buyer
            accept_cancel          | cancel_requested                  | cancelled        | seller
            reject_cancel          | cancel_requested                  | paid             | seller
            cancel_request_timeout | cancel_requested                  | cancelled        | system
            ship_deadline          | paid                              | cancelled        | system
            book_pickup            | paid                              | awaiting_pickup  | seller
            pickup_timeout         | awaiting_pickup                   | paid             | system
            confirm_pickup         | awaiting_pickup                   | shipped          | seller, system
            ship_offline           | paid                              | shipped          | seller
            tracking_in_transit    | shipped                           | in_transit       | operator, system
            tracking_delivered     | shipped, in_transit               | delivered        | operator, system
            tracking_exception     | shipped, in_transit               | =                | operator, system
            record_tracking        | shipped, in_transit, delivered,
                                     completed, in_dispute             | =                | operator, system
            confirm_receipt        | shipped, in_transit, delivered    | completed        | buyer
            auto_confirm           | shipped, in_transit, delivered    | completed        | system
            release_funds          | completed                         | funds_released   | operator, system
            open_dispute           | shipped, in_transit, delivered,
                                     completed                         | in_dispute       | buyer
            close_dispute          | in_dispute                        | refunded         | follow-up
            close_dispute          | in_dispute                        | shipped          | follow-up
            close_dispute          | in_dispute                        | in_transit       | follow-up
            close_dispute          | in_dispute                        | delivered        | follow-up
            close_dispute          | in_dispute                        | completed        | follow-up
        """,
        deadlines=frozenset({
            ("awaiting_payment", "payment_timeout"), ("paid", "ship_deadline"),
            ("cancel_requested", "cancel_request_timeout"), ("awaiting_pickup", "pickup_timeout"),
            ("shipped", "auto_confirm"), ("in_transit", "auto_confirm"),
            ("delivered", "auto_confirm"), ("completed", "release_funds"),
        }),
        continuing=frozenset({("in_transit", "auto_confirm", "shipped")}),
        pausing=states("in_dispute"),  # "all order deadlines are paused"
    ),
    # SPEC §5. The resolutions that need the goods back go to awaiting_return; the others pay
    # the refund at once. A dispute is opened by its order's open_dispute.
    "dispute": Spec(
        states=states("awaiting_seller negotiating under_arbitration awaiting_return "
                      "return_in_transit resolved_refund resolved_no_refund"),
        initial="awaiting_seller",
        terminal=states("resolved_refund resolved_no_refund"),
        arrows="""
            open                    | -                            | awaiting_seller    | follow-up
            accept_claim            | awaiting_seller, negotiating | awaiting_return    | seller
            accept_claim            | awaiting_seller, negotiating | resolved_refund    | seller
            seller_response_timeout | awaiting_seller              | awaiting_return    | system
            seller_response_timeout | awaiting_seller              | resolved_refund    | system
            counter_offer           | awaiting_seller, negotiating | negotiating        | seller
            accept_offer            | negotiating                  | awaiting_return    | buyer
            accept_offer            | negotiating                  | resolved_refund    | buyer
            reject_offer            | negotiating                  | negotiating        | buyer
            escalate                | negotiating                  | under_arbitration  | buyer, seller
            negotiation_timeout     | negotiating                  | under_arbitration  | system
            arbitrate               | under_arbitration            | resolved_no_refund | operator
            arbitrate               | under_arbitration            | awaiting_return    | operator
            arbitrate               | under_arbitration            | resolved_refund    | operator
            ship_return             | awaiting_return              | return_in_transit  | buyer
            return_timeout          | awaiting_return              | resolved_no_refund | system
            confirm_return_received | return_in_transit            | resolved_refund    | seller, operator
            withdraw                | awaiting_seller, negotiating, under_arbitration,
                                      awaiting_return              | resolved_no_refund | buyer
        """,
        deadlines=frozenset({("awaiting_seller", "seller_response_timeout"),
                             ("negotiating", "negotiation_timeout"),
                             ("awaiting_return", "return_timeout")}),
    ),
    # SPEC §6: draft -> active -> deactivated | expired; copies raised while active, lowered
    # only once deactivated; any buyer claims a copy.
    "coupon": Spec(
        states=states("draft active deactivated expired"),
        initial="draft",
        terminal=states("expired"),
        arrows="""
            create     | -                           | draft       | seller
            activate   | draft, deactivated          | active      | seller
            raise      | active                      | active      | seller
            lower      | deactivated                 | deactivated | seller
            deactivate | active                      | deactivated | seller, operator
            claim      | active                      | active      | buyer
            expire     | draft, active, deactivated  | expired     | system
        """,
        deadlines=frozenset({("draft", "expire"), ("active", "expire"),
                             ("deactivated", "expire")}),
        public=states("buyer"),
    ),
    # SPEC §4 coupons on orders: a claimed copy is reserved by an order, spent with it, given
    # back on cancellation while still valid, else it lapses.
    "voucher": Spec(
        states=states("available reserved redeemed spent expired"),
        initial="available",
        terminal=states("spent expired"),
        arrows="""
            issue   | -                  | available | follow-up
            reserve | available          | reserved  | follow-up
            redeem  | reserved           | redeemed  | follow-up
            release | reserved, redeemed | available | follow-up
            release | reserved, redeemed | expired   | follow-up
            spend   | redeemed           | spent     | follow-up
            expire  | available          | expired   | system
        """,
        deadlines=frozenset({("available", "expire")}),
    ),
    # SPEC §7 (issue 13): a capture no order can take is recorded and refunded, never lost.
    "unexpected_capture": Spec(
        states=states("refund_pending refunded"),
        initial="refund_pending",
        terminal=states("refunded"),
        arrows="""
            record | -              | refund_pending | system
            refund | refund_pending | refunded       | system, operator
        """,
        deadlines=frozenset({("refund_pending", "refund")}),
    ),
}

Arrow = tuple[str, tuple[str, ...], str | None, tuple[str, ...], bool]


def spec_arrows(table: str) -> list[Arrow]:
    """The arrows of a table: a line continues while it ends with a comma."""
    joined = re.sub(r",\s*\n\s*", ", ", table.strip())
    arrows: list[Arrow] = []
    for line in joined.splitlines():
        trigger, sources, dest, roles = (cell.strip() for cell in line.split("|"))
        internal = roles == "follow-up"
        arrows.append((
            trigger,
            () if sources == "-" else tuple(sorted(s.strip() for s in sources.split(","))),
            None if dest == "=" else dest,
            ("system",) if internal else tuple(sorted(r.strip() for r in roles.split(","))),
            internal,
        ))
    return sorted(arrows, key=repr)


def real_arrows(definition: MachineDefinition) -> list[Arrow]:
    return sorted(((t.trigger, tuple(sorted(t.source)), t.dest, tuple(sorted(t.roles)),
                    t.internal) for t in definition.transitions), key=repr)


def test_every_machine_has_its_spec_written_out_here() -> None:
    assert set(DEFINITIONS) == set(SPEC)


@pytest.mark.parametrize("kind", sorted(SPEC))
def test_real_machine_has_the_states_of_the_spec(kind: str) -> None:
    definition, spec = DEFINITIONS[kind], SPEC[kind]

    assert set(definition.states) == spec.states
    assert len(definition.states) == len(spec.states)
    assert definition.initial == spec.initial
    assert definition.terminal == spec.terminal
    assert definition.pausing == spec.pausing
    assert definition.public == spec.public


@pytest.mark.parametrize("kind", sorted(SPEC))
def test_real_machine_has_exactly_the_arrows_of_the_spec(kind: str) -> None:
    expected, real = spec_arrows(SPEC[kind].arrows), real_arrows(DEFINITIONS[kind])

    missing = [arrow for arrow in expected if arrow not in real]
    unexpected = [arrow for arrow in real if arrow not in expected]
    assert (missing, unexpected) == ([], [])
    assert real == expected  # and each just once


@pytest.mark.parametrize("kind", sorted(SPEC))
def test_real_machine_schedules_the_deadlines_of_the_spec(kind: str) -> None:
    definition, spec = DEFINITIONS[kind], SPEC[kind]

    assert sorted((d.state, d.trigger) for d in definition.deadlines) == sorted(spec.deadlines)
    assert {(d.state, d.trigger, source) for d in definition.deadlines
            for source in d.continues_from} == spec.continuing


def test_the_spec_tables_are_read_as_written() -> None:
    # The reader of the tables above, pinned on its own: a continued line, the markers.
    assert spec_arrows("""
        close  | a, b,
                 c         | z | seller, operator
        open   | -         | a | follow-up
        note   | a         | = | system
    """) == sorted([
        ("close", ("a", "b", "c"), "z", ("operator", "seller"), False),
        ("open", (), "a", ("system",), True),
        ("note", ("a",), None, ("system",), False),
    ], key=repr)
