"""``lifecycle seller …``: onboarding (SPEC §3), from registration to an active store."""

from __future__ import annotations

from typing import Any

import click

import lifecycle
from lifecycle.cli import payloads
from lifecycle.cli.actions import (
    NOTE,
    Action,
    Field,
    action_command,
    actor_for,
    build_payload,
    common_params,
    offers,
    report,
)
from lifecycle.cli.options import either
from lifecycle.cli.reading import View, field, reading_commands
from lifecycle.cli.session import Noun, Session, pass_session

VIEW = View(
    kind="seller",
    noun="seller",
    created="registered_at",
    details=(
        ("company", field("company_name")),
        ("country", field("country")),
        ("email", field("email")),
        ("store", field("store_name")),
        ("domain", field("domain")),
        ("sales plan", field("sales_plan")),
        ("category", field("category")),
        ("handling days", field("handling_time_days")),
        ("payment method", field("payment_method")),
        ("rejected for", field("rejection_reasons")),
        ("suspended for", field("suspension_reason")),
        ("registered", field("registered_at")),
        ("authenticated", field("authenticated_at")),
        ("fee paid", field("fee_paid_at")),
        ("opened", field("opened_at")),
    ),
    columns=(
        ("company", field("company_name")),
        ("store", field("store_name")),
        ("domain", field("domain")),
        ("plan", field("sales_plan")),
        ("registered", field("registered_at")),
    ),
    currency="fee_currency",
    figures=("annual_fee",),
)

REGISTER_FIELDS = (
    Field("--company-name", "company_name", "The company's registered name.", required=True),
    Field("--entity-type", "entity_type",
          "company, or self_employed (refused: only companies may open a store).",
          type=click.Choice(payloads.choices("seller", "register", "entity_type")), required=True),
    Field("--country", "country", "Country of registration, ISO 3166 alpha-2 (CN).",
          required=True),
    Field("--registration-number", "registration_number", "The company registration number.",
          required=True),
    Field("--email", "email", "The account's email address.", required=True),
)
DOCUMENT_FIELDS = (
    Field("--business-licence", "business_licence", "The business licence reference.",
          required=True),
    Field("--payment-account-authentication", "payment_account_authentication",
          "The corporate payment-account authentication reference.", required=True),
    Field("--product", "product_list", "A product to list (repeat the option).", multiple=True,
          required=True, metavar="NAME"),
    Field("--branded", "branded", "The category is branded: a brand authorisation is needed.",
          flag=True),
    Field("--brand-authorisation", "brand_authorisation",
          "The trademark or brand authorisation reference."),
    Field("--payment-method", "payment_method", "The payment method to bind.", required=True),
)
REASON = Field("--reason", "reason", "Why.", required=True)
PLANS = payloads.choices("seller", "pay_fee", "sales_plan")
DEFAULTS = lifecycle.Policy()  # the policy's defaults, as the help states the limits

ACTIONS = (
    Action("submit-documents", "seller", "submit_documents",
           "Submit the authentication documents for review.", DOCUMENT_FIELDS, self_acting=True),
    Action("approve", "seller", "approve", "Pass the seller's authentication.", (NOTE,)),
    Action("reject", "seller", "reject", "Refuse the seller's authentication, with reasons.",
           (Field("--reason", "reasons", "A reason (repeat the option).", multiple=True,
                  required=True, metavar="TEXT"),)),
    Action("resubmit", "seller", "resubmit", "Submit corrected documents after a rejection.",
           DOCUMENT_FIELDS, self_acting=True),
    Action("pay-fee", "seller", "pay_fee",
           "Choose a sales plan and business category; pay that category's annual fee.",
           (Field("--sales-plan", "sales_plan", f"{either(PLANS)}.",
                  type=click.Choice(PLANS), required=True),
            Field("--category", "category", "The business category.", required=True),
            Field("--payment-ref", "payment_ref", "The payment's reference.")),
           self_acting=True),
    Action("complete-profile", "seller", "complete_profile",
           "Name the store and claim its second-level domain: the store opens.",
           (Field("--store-name", "store_name", "The store's name.", required=True),
            Field("--domain", "domain", "The store's second-level domain (unique).",
                  required=True),
            Field("--handling-time-days", "handling_time_days",
                  "Days the seller takes to ship a paid order "
                  f"({DEFAULTS.handling_time_min.days} to {DEFAULTS.handling_time_max.days}; "
                  f"default {DEFAULTS.handling_time.days}).",
                  type=int)),
           self_acting=True),
    Action("suspend", "seller", "suspend", "Suspend the store for a violation.", (REASON,)),
    Action("reinstate", "seller", "reinstate", "Reinstate a suspended store.", (NOTE,)),
    Action("renew-fee", "seller", "renew_fee", "Pay the lapsed annual fee again: the store reopens.",
           (Field("--payment-ref", "payment_ref", "The payment's reference."),), self_acting=True),
    Action("close", "seller", "close", "Close the account for good.", (NOTE,), self_acting=True),
)


def register_command() -> click.Command:
    def run(session: Session, id: str, actor: str | None, payload: str | None, key: str | None,
            as_json: bool, **values: Any) -> None:
        body = build_payload(REGISTER_FIELDS, payload, values)
        who = actor_for("seller", "register", actor, id, self_acting=True)
        created = session.engine.create("seller", who, body, id=id, idempotency_key=key)
        report(created, as_json)

    return click.Command(
        "register",
        params=[click.Argument(["id"], metavar="ID"), *(f.param() for f in REGISTER_FIELDS),
                *common_params("seller", "register", self_acting=True, create=True)],
        callback=pass_session(run),
        help="Open a seller account with the id ID (a legally registered company only).\n\n"
             "Fires register as seller:ID.",
        short_help="Open a seller account",
    )


offers("seller", "register", "seller register ID")


@click.group(cls=Noun)
def seller() -> None:
    """Seller onboarding: register, authenticate, pay the fee, open and run the store."""


seller.add_command(register_command())
for _action in ACTIONS:
    seller.add_command(action_command(_action))
for _command in reading_commands(VIEW):
    seller.add_command(_command)
