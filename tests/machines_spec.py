"""The machines as the SPEC describes them, written out by hand, for tests to compare the real
definitions and their diagrams with (tests/unit/test_definitions.py, test_diagrams.py).

Each machine as SPEC §3-§6 (and the issues that added a machine) describe it, one arrow a
line: ``trigger | sources | destination | roles``. ``-`` as the sources marks the creating
arrow, ``=`` as the destination a recorded event that keeps the state, ``follow-up`` as the
roles an internal trigger (fired by the system, only as another aggregate's follow-up).
Written independently of lifecycle/machines/: a change to a machine must change this too,
on purpose. Where the code goes beyond the SPEC's words it is noted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    """One machine as the SPEC describes it."""

    states: frozenset[str]
    initial: str
    terminal: frozenset[str]
    arrows: str
    deadlines: frozenset[tuple[str, str]]  # (state entered, trigger it schedules)
    continuing: frozenset[tuple[str, str, str]] = frozenset()  # (state, trigger, carried from)
    pausing: frozenset[str] = frozenset()
    public: frozenset[str] = frozenset()


def states(text: str) -> frozenset[str]:
    """``"a b c"`` as a set of state names."""
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
    # SPEC §12 (issue 20): a violation an operator records against a store; the seller
    # appeals within 7 days or it becomes final; an operator upholds or overturns the appeal;
    # its points expire after 365 days, whatever state it counts in.
    "violation": Spec(
        states=states("recorded appealed final overturned expired"),
        initial="recorded",
        terminal=states("overturned expired"),
        arrows="""
            record   | -                         | recorded   | operator
            appeal   | recorded                  | appealed   | seller
            finalise | recorded                  | final      | system
            uphold   | appealed                  | final      | operator
            overturn | appealed                  | overturned | operator
            expire   | recorded, appealed, final | expired    | system
        """,
        deadlines=frozenset({("recorded", "finalise"), ("recorded", "expire"),
                             ("appealed", "expire"), ("final", "expire")}),
    ),
    # SPEC §12 (issue 20): a store's standing, whose state is the level its active points
    # reach (12, 24, 48 by default); its violations move it, from any level to the level the
    # new points reach under the policy in force (a changed policy may move it either way).
    # Beyond the SPEC: an operator closes the standing of a closed store with nothing active.
    "standing": Spec(
        states=states("clear promotion_restricted orders_refused store_suspended closed"),
        initial="clear",
        terminal=states("closed"),
        arrows="""
            open             | -     | clear  | follow-up
            add_violation    | clear, promotion_restricted,
                               orders_refused, store_suspended | store_suspended      | follow-up
            add_violation    | clear, promotion_restricted,
                               orders_refused, store_suspended | orders_refused       | follow-up
            add_violation    | clear, promotion_restricted,
                               orders_refused, store_suspended | promotion_restricted | follow-up
            add_violation    | clear, promotion_restricted,
                               orders_refused, store_suspended | clear                | follow-up
            remove_violation | clear, promotion_restricted,
                               orders_refused, store_suspended | store_suspended      | follow-up
            remove_violation | clear, promotion_restricted,
                               orders_refused, store_suspended | orders_refused       | follow-up
            remove_violation | clear, promotion_restricted,
                               orders_refused, store_suspended | promotion_restricted | follow-up
            remove_violation | clear, promotion_restricted,
                               orders_refused, store_suspended | clear                | follow-up
            close            | clear | closed | operator
        """,
        deadlines=frozenset(),
    ),
    # SPEC §12 (issue 20): the points centre. The system (the marketplace) or an operator
    # reports what earns; the seller or an operator redeems; operators correct; a penalty comes
    # from an operator or the system (a violation); an operator closes an empty account.
    "points_account": Spec(
        states=states("open closed"),
        initial="open",
        terminal=states("closed"),
        arrows="""
            open     | -    | open   | seller, operator, system
            earn     | open | =      | operator, system
            redeem   | open | =      | seller, operator
            correct  | open | =      | operator
            penalise | open | =      | operator, system
            close    | open | closed | operator
        """,
        deadlines=frozenset(),
    ),
    # An action that earned points, held once (its id is the action's reason and reference).
    "points_earning": Spec(
        states=states("earned"),
        initial="earned",
        terminal=states("earned"),
        arrows="""
            record | - | earned | follow-up
        """,
        deadlines=frozenset(),
    ),
    # SPEC §12 (issue 20): a message on an order, unread until the other side reads it; each
    # side labels and marks it for itself; an operator may remove it (beyond the SPEC's words:
    # a terminal state every machine needs).
    "message": Spec(
        states=states("unread read removed"),
        initial="unread",
        terminal=states("removed"),
        arrows="""
            send    | -            | unread  | buyer, seller
            read    | unread       | read    | buyer, seller
            label   | unread, read | =       | buyer, seller
            unlabel | unread, read | =       | buyer, seller
            mark    | unread, read | =       | buyer, seller
            unmark  | unread, read | =       | buyer, seller
            remove  | unread, read | removed | operator
        """,
        deadlines=frozenset(),
    ),
    # SPEC §12 (issue 20): the owner creates a staff sub-account with permissions, changes
    # them, disables and re-enables it, and removes it; an operator may disable one (support).
    "subaccount": Spec(
        states=states("active disabled removed"),
        initial="active",
        terminal=states("removed"),
        arrows="""
            create          | -                | active   | seller
            set_permissions | active, disabled | =        | seller
            disable         | active           | disabled | seller, operator
            enable          | disabled         | active   | seller
            remove          | active, disabled | removed  | seller
        """,
        deadlines=frozenset(),
    ),
    # SPEC §12 (issue 20): a seller's profile; its email and phone written only once confirmed
    # (a contact's follow-up), its avatar only once approved (an avatar's follow-up).
    "profile": Spec(
        states=states("active closed"),
        initial="active",
        terminal=states("closed"),
        arrows="""
            create            | -      | active | seller
            update            | active | active | seller, operator
            set_privacy       | active | active | seller, operator
            set_subscriptions | active | active | seller, operator
            apply_contact     | active | active | follow-up
            show_avatar       | active | active | follow-up
            close             | active | closed | seller, operator
        """,
        deadlines=frozenset(),
    ),
    # SPEC §12: unverified → verified with a code that expires after 30 minutes. Beyond the
    # SPEC's words: "reissued" is unverified with a newer code, so that each code's deadline
    # starts afresh; "closed" ends a contact with its profile.
    "contact": Spec(
        states=states("unverified reissued verified expired closed"),
        initial="unverified",
        terminal=states("closed"),
        arrows="""
            request | -                                    | unverified | follow-up
            change  | unverified                           | reissued   | follow-up
            change  | reissued, verified, expired          | unverified | follow-up
            resend  | unverified                           | reissued   | seller, operator
            resend  | reissued, expired                    | unverified | seller, operator
            confirm | unverified, reissued                 | verified   | seller
            expire  | unverified, reissued                 | expired    | system
            close   | unverified, reissued, verified, expired | closed  | follow-up
        """,
        deadlines=frozenset({("unverified", "expire"), ("reissued", "expire")}),
    ),
    # SPEC §12: submitted → under_review → approved | rejected by an operator; a review open 24
    # hours goes to the operators' overdue queue (a state), reviewed from there.
    "avatar": Spec(
        states=states("submitted under_review overdue approved rejected"),
        initial="submitted",
        terminal=states("approved rejected"),
        arrows="""
            upload  | -                       | submitted    | seller
            review  | submitted               | under_review | operator
            overdue | submitted, under_review | overdue      | system
            approve | under_review, overdue   | approved     | operator
            reject  | under_review, overdue   | rejected     | operator
        """,
        deadlines=frozenset({("submitted", "overdue"), ("under_review", "overdue")}),
    ),
}

#: (trigger, sources, destination or None, roles, internal); sources and roles sorted
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
