"""The HTTP API through a real uvicorn process and a real HTTP client: a whole order and a
dispute, every error as its status and problem body, scopes refused with nothing written,
Idempotency-Key replays and If-Match."""

from __future__ import annotations

import base64
import json
import re
import socket
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from lifecycle.adapters import MAX_BODY_BYTES, signed_headers, webhook_key
from tests.builders import (
    DOCUMENTS,
    FEE,
    ORDER_TOTAL,
    REGISTRATION,
    SHIPMENT,
    order_payload,
    profile,
)
from tests.service.conftest import GATEWAY_SECRET, OLD_GATEWAY_SECRET, Server, new_id

PROBLEM = "application/problem+json"
OPERATOR = ("operator", "ana")
SYSTEM = ("system", "svc")


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def problem_of(response: httpx.Response, status: int, type_end: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(f"problem/{type_end}")
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def active_seller(server: Server) -> str:
    sid = new_id("s")
    me = ("seller", sid)
    created = server.request("POST", f"/v1/sellers?id={sid}", me, REGISTRATION)
    assert ok(created, 201)["state"] == "registered"
    assert created.headers["location"] == f"/v1/sellers/{sid}"
    assert created.headers["etag"] == '"1"'
    ok(server.request("POST", f"/v1/sellers/{sid}/submit_documents", me, DOCUMENTS))
    ok(server.request("POST", f"/v1/sellers/{sid}/approve", OPERATOR))
    ok(server.request("POST", f"/v1/sellers/{sid}/pay_fee", me, FEE))
    done = ok(server.request("POST", f"/v1/sellers/{sid}/complete_profile", me, profile(sid)))
    assert done["state"] == "active"
    return sid


def placed_order(server: Server, sid: str, bid: str) -> dict[str, Any]:
    return ok(server.request("POST", "/v1/orders", ("buyer", bid), order_payload(sid)), 201)


def delivered_order(server: Server) -> tuple[str, str, str]:
    sid, bid = active_seller(server), new_id("b")
    oid = placed_order(server, sid, bid)["id"]
    ok(server.request("POST", f"/v1/orders/{oid}/pay", ("buyer", bid), {}))
    ok(server.request("POST", f"/v1/orders/{oid}/ship_offline", ("seller", sid), SHIPMENT))
    ok(server.request("POST", f"/v1/orders/{oid}/tracking_in_transit", SYSTEM))
    assert ok(server.request("POST", f"/v1/orders/{oid}/tracking_delivered", SYSTEM))["state"] == "delivered"
    return sid, bid, oid


def test_a_whole_order_over_http(server: Server) -> None:
    _, bid, oid = delivered_order(server)
    buyer = ("buyer", bid)
    assert "confirm_receipt" in ok(server.request("GET", f"/v1/orders/{oid}/allowed", buyer))["allowed"]

    completed = server.request("POST", f"/v1/orders/{oid}/confirm_receipt", buyer)
    released = ok(server.request("POST", f"/v1/orders/{oid}/release_funds", OPERATOR))

    assert ok(completed)["state"] == "completed"
    assert released["state"] == "funds_released"
    got = server.request("GET", f"/v1/orders/{oid}", buyer)
    assert got.headers["etag"] == f'"{released["version"]}"'
    history = ok(server.request("GET", f"/v1/orders/{oid}/history", buyer))
    assert [h["trigger"] for h in history] == [
        "place", "pay", "ship_offline", "tracking_in_transit", "tracking_delivered",
        "confirm_receipt", "release_funds"]
    assert history[-1]["actor"] == {"role": "operator", "id": "ana"}
    ledger = ok(server.request("GET", f"/v1/orders/{oid}/ledger", OPERATOR))
    assert ORDER_TOTAL in {entry["amount"] for entry in ledger}  # money as exact strings
    balances = ok(server.request("GET", f"/v1/orders/{oid}/balances", OPERATOR))
    assert all(isinstance(v, str) for per in balances.values() for v in per.values())
    assert server.engine.get("order", oid).state == "funds_released"
    assert ok(server.request("POST", "/v1/check", OPERATOR))["ok"] is True


def test_a_dispute_over_http(server: Server) -> None:
    sid, bid, oid = delivered_order(server)
    claim = {"type": "received", "reason": "quality", "refund_amount": "20.00", "return_goods": False}

    disputed = ok(server.request("POST", f"/v1/orders/{oid}/open_dispute", ("buyer", bid), claim))
    did = disputed["data"]["dispute"]
    dispute = ok(server.request("GET", f"/v1/disputes/{did}", ("seller", sid)))
    resolved = ok(server.request("POST", f"/v1/disputes/{did}/accept_claim", ("seller", sid)))

    assert disputed["state"] == "in_dispute"
    assert dispute["state"] == "awaiting_seller"
    assert resolved["state"] == "resolved_refund"
    order = ok(server.request("GET", f"/v1/orders/{oid}", ("buyer", bid)))
    assert order["state"] != "in_dispute"
    assert server.engine.get("dispute", did).state == "resolved_refund"


def test_a_list_pages_with_a_next_cursor_for_operators_only(server: Server) -> None:
    active_seller(server)
    active_seller(server)

    first = ok(server.request("GET", "/v1/sellers?state=active&limit=1", OPERATOR))
    second = ok(server.request("GET", f"/v1/sellers?state=active&limit=1&after={first['next']}", OPERATOR))
    refused = server.request("GET", "/v1/sellers", ("buyer", "b-1"))

    assert len(first["items"]) == 1
    assert first["next"] == first["items"][0]["id"]
    assert second["items"][0]["id"] > first["items"][0]["id"]
    problem_of(refused, 403, "forbidden")
    assert isinstance(ok(server.request("GET", "/v1/deadlines?due=false", OPERATOR)), list)


# --- who may act ------------------------------------------------------------------------------


def test_keys_out_of_scope_are_refused_and_write_nothing(server: Server) -> None:
    sid = active_seller(server)
    bid = new_id("b")
    order = placed_order(server, sid, bid)
    oid = order["id"]
    before = (server.engine.get("order", oid).version, len(server.engine.history("order", oid)))
    stranger = new_id("b")
    _, revoked = server.engine.create_key("buyer", actor_id=bid)
    server.engine.revoke_key(revoked.split("_")[1])

    attempts = {
        "no key": server.request("POST", f"/v1/orders/{oid}/pay", json={}),
        "wrong key": server.request("POST", f"/v1/orders/{oid}/pay", json={},
                                    headers={"Authorization": "Bearer lck_nope_nope"}),
        "revoked key": server.request("POST", f"/v1/orders/{oid}/pay", json={},
                                      headers={"Authorization": f"Bearer {revoked}"}),
        "another buyer than the key's": server.request(
            "POST", f"/v1/orders/{oid}/pay", ("buyer", stranger), {}, headers={"Lifecycle-Actor": bid}),
        "a role scope naming nobody": server.request("POST", f"/v1/orders/{oid}/pay", ("buyer", None), {}),
        "a seller's trigger": server.request("POST", f"/v1/orders/{oid}/cancel", ("seller", sid), {}),
        "another buyer's order": server.request("POST", f"/v1/orders/{oid}/pay", ("buyer", stranger), {}),
    }

    for what, response in list(attempts.items())[:3]:
        problem_of(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer", what
    for response in list(attempts.values())[3:6]:
        problem_of(response, 403, "forbidden")
    # Firing on another's order is answered as reading it is: as if it did not exist.
    theirs = problem_of(attempts["another buyer's order"], 404, "not-found")
    nobodys = problem_of(server.request("POST", "/v1/orders/o-absent/pay", ("buyer", stranger), {}),
                         404, "not-found")
    assert (theirs["kind"], theirs["id"]) == ("order", oid)
    assert set(theirs) == set(nobodys)
    assert theirs["detail"] == nobodys["detail"].replace("o-absent", oid)
    after = (server.engine.get("order", oid).version, len(server.engine.history("order", oid)))
    assert after == before


def test_a_role_scope_key_acts_as_the_actor_it_names(server: Server) -> None:
    sid = active_seller(server)
    bid = new_id("b")
    oid = placed_order(server, sid, bid)["id"]

    paid = server.request("POST", f"/v1/orders/{oid}/pay", ("buyer", None), {},
                          headers={"Lifecycle-Actor": bid})

    assert ok(paid)["state"] == "paid"
    assert server.engine.history("order", oid)[-1].actor.id == bid


def test_another_buyers_aggregate_reads_as_absent(server: Server) -> None:
    sid = active_seller(server)
    oid = placed_order(server, sid, new_id("b"))["id"]
    stranger = ("buyer", new_id("b"))

    for path in ("", "/history", "/allowed", "/ledger", "/balances", "/deadlines", "/tracking"):
        body = problem_of(server.request("GET", f"/v1/orders/{oid}{path}", stranger), 404, "not-found")
        assert (body["kind"], body["id"]) == ("order", oid)
    absent = problem_of(server.request("GET", "/v1/orders/o-absent", stranger), 404, "not-found")
    assert set(absent) == set(body)
    problem_of(server.request("POST", "/v1/check", stranger), 403, "forbidden")


# --- HTTP semantics ---------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_result_and_refuses_another_request(server: Server) -> None:
    sid = active_seller(server)
    bid = new_id("b")
    oid = placed_order(server, sid, bid)["id"]
    key = {"Idempotency-Key": new_id("retry")}

    first = ok(server.request("POST", f"/v1/orders/{oid}/pay", ("buyer", bid), {}, headers=key))
    again = ok(server.request("POST", f"/v1/orders/{oid}/pay", ("buyer", bid), {}, headers=key))
    other = server.request("POST", f"/v1/orders/{oid}/request_cancel", ("buyer", bid),
                           {"reason": "changed my mind"}, headers=key)

    assert again == first
    assert len(server.engine.history("order", oid)) == 2
    body = problem_of(other, 422, "idempotency-mismatch")
    assert body["key"] == key["Idempotency-Key"]
    assert server.engine.get("order", oid).state == "paid"


def test_if_match_fires_on_the_version_read_and_a_stale_one_is_412(server: Server) -> None:
    sid = active_seller(server)
    bid = new_id("b")
    placed = server.request("POST", "/v1/orders", ("buyer", bid), order_payload(sid))
    oid, tag = placed.json()["id"], placed.headers["etag"]

    paid = server.request("POST", f"/v1/orders/{oid}/pay", ("buyer", bid), {}, headers={"If-Match": tag})
    stale = server.request("POST", f"/v1/orders/{oid}/request_cancel", ("buyer", bid),
                           {"reason": "changed my mind"}, headers={"If-Match": tag})

    assert ok(paid)["state"] == "paid"
    assert paid.headers["etag"] == '"2"'
    body = problem_of(stale, 412, "precondition-failed")
    assert body["expected_version"] == 1
    assert "retry-after" not in stale.headers
    assert server.engine.get("order", oid).version == 2


# --- errors as problems -----------------------------------------------------------------------


def test_every_refusal_is_a_problem_with_its_status_and_data(server: Server) -> None:
    sid = active_seller(server)
    bid = new_id("b")
    buyer = ("buyer", bid)
    oid = placed_order(server, sid, bid)["id"]
    unready = new_id("s")
    ok(server.request("POST", f"/v1/sellers?id={unready}", ("seller", unready), REGISTRATION), 201)

    transition = problem_of(server.request("POST", f"/v1/orders/{oid}/confirm_receipt", buyer), 409,
                            "invalid-transition")
    guard = problem_of(server.request("POST", "/v1/orders", buyer, order_payload(unready)), 422,
                       "guard-failed")
    payload = problem_of(server.request("POST", "/v1/orders", buyer, {"seller": sid}), 422,
                         "invalid-payload")
    exists = problem_of(server.request("POST", f"/v1/sellers?id={sid}", ("seller", sid), REGISTRATION),
                        409, "already-exists")
    malformed = problem_of(server.request("POST", f"/v1/orders/{oid}/pay", buyer, content=b"{not json",
                                          headers={"Content-Type": "application/json"}), 400,
                           "malformed-body")
    duplicate = problem_of(server.request("POST", f"/v1/orders/{oid}/pay", buyer,
                                          content=b'{"amount": "1", "amount": "52.48"}'), 400,
                           "malformed-body")
    absent = problem_of(server.request("GET", "/v1/orders/o-nothing", OPERATOR), 404, "not-found")
    route = problem_of(server.request("GET", "/v2/nothing"), 404, "http-404")
    query = problem_of(server.request("GET", "/v1/orders?limit=0", OPERATOR), 422, "invalid-request")
    bad_tag = problem_of(server.request("POST", f"/v1/orders/{oid}/pay", buyer, {},
                                        headers={"If-Match": "W/\"1\""}), 422, "invalid-request")

    assert (transition["state"], transition["trigger"]) == ("awaiting_payment", "confirm_receipt")
    assert "pay" in transition["allowed"]
    assert guard["rule"] == "seller.active"
    assert payload["field"] == "lines"  # the first field missing
    assert (exists["kind"], exists["id"]) == ("seller", sid)
    assert malformed["field"] == duplicate["field"] == "body"
    assert "duplicate" in duplicate["detail"]
    assert absent["id"] == "o-nothing"
    assert "/v2/nothing" in route["detail"]
    assert query["field"] == "query.limit"
    assert bad_tag["field"] == "header.If-Match"
    assert server.engine.get("order", oid).version == 1  # none of them wrote


def callback(order_id: str, event_id: str, amount: str = ORDER_TOTAL) -> bytes:
    return json.dumps({"event_id": event_id, "kind": "captured", "order_id": order_id,
                       "payment_ref": f"pay-{event_id}", "amount": amount,
                       "currency": "USD"}).encode()


def deliver(server: Server, path: str, body: bytes, secret: str = GATEWAY_SECRET,
            message_id: str | None = None) -> httpx.Response:
    headers = signed_headers(webhook_key(secret), message_id or new_id("msg"),
                             datetime.now(UTC), body)
    return server.request("POST", path, content=body, headers=headers)


def test_a_signed_payment_callback_pays_the_order_once_and_a_second_capture_is_refused(
    server: Server,
) -> None:
    sid = active_seller(server)
    oid = placed_order(server, sid, new_id("b"))["id"]
    body, message = callback(oid, new_id("ev")), new_id("msg")

    paid = ok(deliver(server, "/webhooks/payments/sandbox", body, message_id=message))
    again = ok(deliver(server, "/webhooks/payments/sandbox", body, OLD_GATEWAY_SECRET, message))
    second = ok(deliver(server, "/webhooks/payments/sandbox", callback(oid, new_id("ev"))))

    assert paid["outcome"] == "applied"
    assert paid["order"]["state"] == "paid"
    assert again["order"]["version"] == paid["order"]["version"]  # the redelivery wrote nothing
    assert second["outcome"] == "refused"
    assert second["retry"] is False
    assert second["capture"]
    history = server.engine.history("order", oid)
    assert [h.trigger for h in history] == ["place", "pay"]
    assert history[-1].actor.role == "system"


def test_a_webhook_with_a_bad_signature_is_401_an_unreadable_one_400(server: Server) -> None:
    sid = active_seller(server)
    oid = placed_order(server, sid, new_id("b"))["id"]
    body = callback(oid, new_id("ev"))
    forged_secret = "whsec_" + base64.b64encode(b"not-the-gateway-key-at-all-000").decode()

    unsigned = server.request("POST", "/webhooks/payments/sandbox", content=body)
    forged = deliver(server, "/webhooks/payments/sandbox", body, forged_secret)
    unreadable = deliver(server, "/webhooks/payments/sandbox", b'{"event_id": "e-1"}')
    duplicated = deliver(server, "/webhooks/payments/sandbox", b'{"kind": "captured", "kind": "x"}')

    problem_of(unsigned, 401, "signature-invalid")
    problem_of(forged, 401, "signature-invalid")
    problem_of(unreadable, 400, "adapter-error")
    unknown = problem_of(deliver(server, "/webhooks/payments/paypal", body), 404, "invalid-payload")
    assert unknown["field"] == "gateway"
    problem_of(duplicated, 400, "adapter-error")
    assert server.engine.get("order", oid).state == "awaiting_payment"


@pytest.mark.parametrize("path", ["/webhooks/carriers/dhl", "/v1/orders", "/v1/orders/o-1/pay"])
def test_a_body_over_the_cap_is_413_before_it_is_read(server: Server, path: str) -> None:
    """A raw socket declares a huge body and sends almost none of it: the answer comes at once,
    for a webhook and for a trigger's payload alike."""
    host, port = server.url.removeprefix("http://").split(":")
    declared = MAX_BODY_BYTES * 100
    key = f"Authorization: Bearer {server.token('buyer', 'b-cap')}\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{key}"
                    f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{{".encode())
        answer = raw.recv(65536).decode("latin-1")

    assert answer.startswith("HTTP/1.1 413")
    assert "application/problem+json" in answer


def test_the_docs_page_and_everything_it_loads_come_from_the_server(server: Server) -> None:
    page = server.request("GET", "/docs")
    document = ok(server.request("GET", "/openapi.json"))

    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert assets, "the page references its stylesheet and the document"
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not on this server"
        assert server.request("GET", asset).status_code == 200
    assert document["openapi"].startswith("3.1")
    body = document["paths"]["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PlaceOrder"}
    assert "lines" in document["components"]["schemas"]["PlaceOrder"]["properties"]


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_operations_endpoints_need_no_key(server: Server, path: str) -> None:
    assert server.request("GET", path).status_code == 200


# --- events for services without a broker (issue #17) -----------------------------------------


def test_events_page_by_position_and_a_subscription_goes_on_after_its_ack(server: Server) -> None:
    sid = active_seller(server)
    first = ok(server.request("GET", "/v1/events?limit=2", OPERATOR))
    rest = ok(server.request("GET", f"/v1/events?after={first['next']}&limit=1000", OPERATOR))
    positions = [item["position"] for item in first["items"] + rest["items"]]
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    mine = [item["event"] for item in first["items"] + rest["items"]
            if item["event"]["aggregate_id"] == sid]
    assert [e["name"] for e in mine][-1] == "seller.active"
    assert [e["seq"] for e in mine] == list(range(1, len(mine) + 1))

    name = new_id("billing")
    polled = ok(server.request("GET", f"/v1/subscriptions/{name}/events?limit=3", OPERATOR))
    again = ok(server.request("GET", f"/v1/subscriptions/{name}/events?limit=3", OPERATOR))
    assert again == polled  # the same until acknowledged
    acked = ok(server.request("POST", f"/v1/subscriptions/{name}/ack", SYSTEM,
                              {"cursor": polled["next"]}))
    assert acked == {"name": name, "cursor": polled["next"]}
    after = ok(server.request("GET", f"/v1/subscriptions/{name}/events?limit=1", OPERATOR))
    assert after["items"][0]["position"] == polled["next"] + 1


def test_events_are_for_operator_and_system_keys_and_a_bad_ack_is_refused(server: Server) -> None:
    problem_of(server.request("GET", "/v1/events", ("buyer", "b-1")), 403, "forbidden")
    problem_of(server.request("GET", "/v1/subscriptions/x/events", ("seller", "s-1")), 403,
               "forbidden")
    for body in ({"cursor": -1}, {"position": 1}, {"cursor": "1"}, {"cursor": 10**12}):
        problem_of(server.request("POST", "/v1/subscriptions/x/ack", OPERATOR, body), 422,
                   "invalid-payload")
    assert server.request("GET", "/v1/events?after=-1", OPERATOR).status_code == 422
