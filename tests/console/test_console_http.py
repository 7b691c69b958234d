"""The operator's console over plain HTTP (TestClient on the service's app): every page, every
refusal (unknown id, bad form input, CSRF, stale version, a key of another role), and that a
refused request writes nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import inspect

import lifecycle
from lifecycle.console import diagram
from tests.builders import rows
from tests.console.conftest import OPERATOR_ID, Shop, TestClient, cli_refusal, csrf_of, park


def page_of(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text[-500:])
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def refusal_in(html: str) -> str:
    found = re.search(r'<p class="refusal" id="refusal">(.*?)</p>', html, re.S)
    assert found, html[-1500:]
    import html as html_module
    return html_module.unescape(found.group(1))


def confirm_and_fire(client: TestClient, kind: str, id: str, trigger: str,
                     fields: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Post the trigger's form, then the confirmation: (the confirmation page, the fire form)."""
    page = page_of(client, f"/console/{kind}/{id}")
    csrf = csrf_of(page)
    confirmed = client.post(f"/console/{kind}/{id}/confirm",
                            data={"csrf": csrf, "trigger": trigger, **fields})
    assert confirmed.status_code == 200, confirmed.text[-800:]
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"',
                           confirmed.text.split('id="confirm-form"')[1]))
    import html as html_module
    return confirmed.text, {k: html_module.unescape(v) for k, v in form.items()}


# --- signing in ------------------------------------------------------------------------------


def test_every_page_sends_an_anonymous_visitor_to_the_sign_in_page(anonymous: TestClient,
                                                                  shop: Shop) -> None:
    for path in ("/console/", "/console/search?kind=order", f"/console/order/{shop.paid.id}",
                 "/console/deadlines", "/console/simulations"):
        response = anonymous.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/console/login"), path
    assert "Paste an operator API key" in page_of(anonymous, "/console/login")


def test_a_post_without_a_session_is_refused_and_writes_nothing(anonymous: TestClient,
                                                                shop: Shop) -> None:
    before = rows(shop.engine)
    response = anonymous.post(f"/console/dispute/{shop.dispute.id}/fire",
                              data={"trigger": "arbitrate", "version": "4",
                                    "payload": '{"decision": "no_refund"}'})
    assert response.status_code == 401
    assert rows(shop.engine) == before


def test_a_bad_token_is_refused_with_the_apis_message_and_no_cookie(anonymous: TestClient) -> None:
    response = anonymous.post("/console/login", data={"token": "lck_nope"})
    assert response.status_code == 401
    assert refusal_in(response.text) == "invalid or revoked API key"
    assert "set-cookie" not in response.headers


def test_a_buyers_key_does_not_open_the_console(anonymous: TestClient, shop: Shop) -> None:
    key, token = shop.engine.create_key("buyer", actor_id="b-1")
    response = anonymous.post("/console/login", data={"token": token})
    assert response.status_code == 403
    assert f"API key {key.id} is a buyer key; the console takes operator keys" in refusal_in(response.text)
    assert "set-cookie" not in response.headers


def test_a_role_scope_key_signs_in_as_the_operator_it_names(anonymous: TestClient, shop: Shop) -> None:
    _, token = shop.engine.create_key("operator")
    unnamed = anonymous.post("/console/login", data={"token": token})
    assert unnamed.status_code == 403
    assert "must name the operator it acts as" in refusal_in(unnamed.text)
    named = anonymous.post("/console/login", data={"token": token, "actor": "op-bea"})
    assert named.status_code == 303
    assert '<span class="who" id="who">operator:op-bea</span>' in page_of(anonymous, "/console/")


def test_a_revoked_key_signs_the_console_out(client: TestClient, shop: Shop) -> None:
    page_of(client, "/console/")
    key = next(k for k in shop.engine.keys(include_revoked=False) if k.actor_id == OPERATOR_ID)
    shop.engine.revoke_key(key.id)
    response = client.get("/console/")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?reason=invalid+or+revoked")


def test_the_session_cookie_is_http_only_strict_and_kept_to_the_console(anonymous: TestClient,
                                                                        shop: Shop) -> None:
    response = anonymous.post("/console/login", data={"token": shop.token})
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console/" in cookie


def test_signing_out_needs_the_csrf_token_and_clears_the_cookie(client: TestClient) -> None:
    assert client.post("/console/logout", data={"csrf": "0" * 64}).status_code == 403
    csrf = csrf_of(page_of(client, "/console/"))
    out = client.post("/console/logout", data={"csrf": csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/console/login")
    assert client.get("/console/").status_code == 303


# --- search ----------------------------------------------------------------------------------


def hits(html: str) -> list[str]:
    return re.findall(r'<a class="hit" href="/console/\w+/([^"]+)">', html)


def test_the_home_page_counts_each_kind_by_state(client: TestClient) -> None:
    html = page_of(client, "/console/")
    assert 'href="/console/search?kind=dispute&amp;state=under_arbitration">under_arbitration' in html
    assert "/console/search?kind=order&amp;state=funds_released" in html


def test_search_finds_an_order_by_id_state_buyer_and_seller(client: TestClient, shop: Shop) -> None:
    assert hits(page_of(client, f"/console/search?kind=order&id={shop.paid.id}")) == [shop.paid.id]
    assert hits(page_of(client, "/console/search?kind=order&state=funds_released")) == [shop.released.id]
    assert hits(page_of(client, "/console/search?kind=order&buyer=b-2")) == [shop.released.id]
    assert sorted(hits(page_of(client, "/console/search?kind=order&seller=s-1"))) == sorted(
        [shop.paid.id, shop.released.id, shop.dispute.data["order"]])
    assert hits(page_of(client, "/console/search?kind=dispute&buyer=b-3")) == [shop.dispute.id]
    assert hits(page_of(client, "/console/search?kind=seller&seller=s-1")) == ["s-1"]
    assert hits(page_of(client, "/console/search?kind=order&buyer=nobody")) == []


def test_search_by_created_and_updated_time(client: TestClient, shop: Shop) -> None:
    first = shop.engine.history("order", shop.paid.id)[0].at
    later = shop.clock.now() + timedelta(seconds=1)
    shop.clock.advance(lifecycle.Policy().protection_period)
    shop.engine.fire("order", shop.paid.id, "request_cancel", lifecycle.Actor("buyer", "b-1"),
                     {"reason": "changed my mind"})
    day = first.date().isoformat()
    assert shop.paid.id in hits(page_of(client, f"/console/search?kind=order&created_from={day}"))
    assert hits(page_of(client, f"/console/search?kind=order&created_to={day}")) == []
    updated = hits(page_of(client, "/console/search?kind=order&updated_from="
                                   f"{later.isoformat().replace('+00:00', '')}"))
    assert updated == [shop.paid.id]


def test_a_bad_search_says_which_field_and_an_unknown_id_is_a_404(client: TestClient) -> None:
    bad = client.get("/console/search?kind=order&created_from=yesterday")
    assert bad.status_code == 422
    assert refusal_in(bad.text) == ("invalid created_from: 'yesterday' is not a date or time "
                                    "(2026-01-05 or 2026-01-05T10:00)")
    state = client.get("/console/search?kind=order&state=lost")
    assert state.status_code == 422
    assert refusal_in(state.text).startswith("invalid state: 'lost' is not a state of order")
    missing = client.get("/console/search?kind=order&id=o-nope")
    assert missing.status_code == 404
    assert refusal_in(missing.text) == "no order with id 'o-nope'"
    kind = client.get("/console/search?kind=parcel")
    assert kind.status_code == 404


# --- an aggregate's page ---------------------------------------------------------------------


def test_an_aggregates_page_highlights_its_state_and_shows_its_timeline(client: TestClient,
                                                                        shop: Shop) -> None:
    html = page_of(client, f"/console/dispute/{shop.dispute.id}")
    assert '<g class="state current" data-state="under_arbitration">' in html
    assert html.count('class="state current"') == 1
    entries = re.findall(r'data-seq="(\d+)" data-trigger="(\w+)"', html)
    assert entries == [("3", "escalate"), ("2", "counter_offer"), ("1", "open")]
    assert "by seller:s-1" in html
    assert "by buyer:b-3" in html
    assert "&#34;refund_amount&#34;: &#34;10.00&#34;" in html  # the counter-offer's payload
    assert 'data-trigger="arbitrate"' in html  # the operator may arbitrate now
    assert f'href="/console/order/{shop.dispute.data["order"]}"' in html


def test_deadlines_show_the_time_left_by_the_engines_clock(client: TestClient, shop: Shop) -> None:
    html = page_of(client, f"/console/order/{shop.paid.id}")
    row = re.search(r'<tr class="deadline pending"><td>ship_deadline</td>.*?<td class="left">(.*?)</td>',
                    html, re.S)
    assert row, html
    assert row.group(1) == "7d 00h00m"  # the seller's handling time, nothing passed yet


def test_ledger_balances_show_the_currencys_minor_units(client: TestClient, shop: Shop) -> None:
    html = page_of(client, f"/console/order/{shop.released.id}")
    balances = shop.engine.balances("order", shop.released.id)["USD"]
    shown = dict(re.findall(r"<td>USD</td><td>(\w+)</td><td class=\"n money\">([-0-9.]+)</td>", html))
    assert shown == {account: format(value.quantize(Decimal("0.01")), "f")
                     for account, value in balances.items()}
    assert shown["escrow"] == "0.00"  # a whole number of minor units, never "0"


def test_the_diagram_hides_self_loops_and_draws_every_state() -> None:
    order = lifecycle.definition("order")
    svg = diagram.svg(order, "shipped")
    assert "tracking_exception" not in svg  # shipped → shipped, in_transit → in_transit
    assert re.findall(r'data-state="(\w+)"', svg) == list(order.states)
    assert 'class="edge next"' in svg  # the arrows leaving shipped


def test_an_unknown_id_or_kind_or_page_is_a_404_page(client: TestClient) -> None:
    missing = client.get("/console/order/o-nope")
    assert missing.status_code == 404
    assert refusal_in(missing.text) == "no order with id 'o-nope'"
    assert missing.headers["content-type"].startswith("text/html")
    assert client.get("/console/parcel/p-1").status_code == 404
    nowhere = client.get("/console/order/o-1/history/x")
    assert nowhere.status_code == 404
    assert refusal_in(nowhere.text) == "no such page in the console"


# --- firing ----------------------------------------------------------------------------------


def test_arbitrate_fires_after_confirmation_under_the_operators_id(client: TestClient,
                                                                   shop: Shop) -> None:
    page, form = confirm_and_fire(client, "dispute", shop.dispute.id, "arbitrate",
                                  {"f.decision": "refund", "f.refund_amount": "15.00",
                                   "f.note": "photos show the damage"})
    version = shop.dispute.version
    assert f"It applies only if the dispute is still at version {version}" in page
    assert shop.engine.get("dispute", shop.dispute.id).state == "under_arbitration"  # not yet
    done = client.post(f"/console/dispute/{shop.dispute.id}/fire", data=form)
    assert done.status_code == 303
    after = shop.engine.get("dispute", shop.dispute.id)
    assert after.state == "resolved_refund"
    last = shop.engine.history("dispute", shop.dispute.id)[-1]
    assert (last.trigger, str(last.actor)) == ("arbitrate", f"operator:{OPERATOR_ID}")
    assert last.payload["refund_amount"] == "15.00"
    assert last.idempotency_key == form["key"]
    assert done.headers["location"] == f"/console/dispute/{shop.dispute.id}?fired=arbitrate"
    shown = page_of(client, done.headers["location"])
    assert (f"arbitrate fired by operator:{OPERATOR_ID}: dispute {shop.dispute.id} is "
            f"resolved_refund (version {version + 1})") in shown
    assert re.search(r'<g class="state current[ \w]*" data-state="resolved_refund">', shown)


def test_confirming_twice_fires_once(client: TestClient, shop: Shop) -> None:
    _, form = confirm_and_fire(client, "dispute", shop.dispute.id, "arbitrate",
                               {"f.decision": "no_refund"})
    assert client.post(f"/console/dispute/{shop.dispute.id}/fire", data=form).status_code == 303
    before = rows(shop.engine)
    assert client.post(f"/console/dispute/{shop.dispute.id}/fire", data=form).status_code == 303
    assert rows(shop.engine) == before
    assert len(shop.engine.history("dispute", shop.dispute.id)) == shop.dispute.version + 1


def test_a_refusal_shows_the_clis_message_and_writes_nothing(client: TestClient, shop: Shop) -> None:
    before = rows(shop.engine)
    _, form = confirm_and_fire(client, "dispute", shop.dispute.id, "arbitrate",
                               {"f.decision": "refund", "f.refund_amount": "999.00"})
    refused = client.post(f"/console/dispute/{shop.dispute.id}/fire", data=form)
    assert refused.status_code == 422
    cli = cli_refusal(shop.url, "fire", "dispute", shop.dispute.id, "arbitrate", "--payload",
                      '{"decision": "refund", "refund_amount": "999.00"}', "--as",
                      f"operator:{OPERATOR_ID}")
    assert refusal_in(refused.text) == cli
    assert "dispute.refund_within_paid" in cli
    assert rows(shop.engine) == before


def test_bad_form_input_names_the_field_and_writes_nothing(client: TestClient, shop: Shop) -> None:
    before = rows(shop.engine)
    _, form = confirm_and_fire(client, "dispute", shop.dispute.id, "arbitrate",
                               {"f.decision": "refund"})  # no amount
    refused = client.post(f"/console/dispute/{shop.dispute.id}/fire", data=form)
    assert refused.status_code == 422
    assert refusal_in(refused.text) == cli_refusal(
        shop.url, "dispute", "arbitrate", shop.dispute.id, "--decision", "refund",
        "--as", f"operator:{OPERATOR_ID}")
    amount = client.post(f"/console/dispute/{shop.dispute.id}/fire",
                         data={**form, "payload": '{"decision": "refund", "refund_amount": "ten"}'})
    assert amount.status_code == 422
    assert refusal_in(amount.text).startswith("invalid refund_amount")
    page = page_of(client, f"/console/dispute/{shop.dispute.id}")
    not_json = client.post(f"/console/dispute/{shop.dispute.id}/confirm",
                           data={"csrf": csrf_of(page), "trigger": "arbitrate",
                                 "payload_json": "{decision: refund"})
    assert not_json.status_code == 422
    assert refusal_in(not_json.text).startswith("invalid payload: is not JSON")
    no_version = client.post(f"/console/dispute/{shop.dispute.id}/fire",
                             data={**form, "version": ""})
    assert no_version.status_code == 422
    assert refusal_in(no_version.text) == "invalid version: the version confirmed is missing"
    assert rows(shop.engine) == before


def test_a_trigger_the_state_does_not_allow_is_refused_as_the_cli_refuses_it(client: TestClient,
                                                                             shop: Shop) -> None:
    before = rows(shop.engine)
    page = page_of(client, f"/console/order/{shop.released.id}")
    refused = client.post(f"/console/order/{shop.released.id}/fire",
                          data={"csrf": csrf_of(page), "trigger": "cancel",
                                "version": str(shop.released.version), "key": "console-k1"})
    assert refused.status_code == 409
    assert refusal_in(refused.text) == cli_refusal(shop.url, "fire", "order", shop.released.id,
                                                   "cancel", "--as", f"operator:{OPERATOR_ID}")
    assert rows(shop.engine) == before


def test_a_stale_confirmation_is_a_conflict_and_writes_nothing(client: TestClient, shop: Shop) -> None:
    _, form = confirm_and_fire(client, "dispute", shop.dispute.id, "arbitrate",
                               {"f.decision": "no_refund"})
    shop.engine.fire("dispute", shop.dispute.id, "withdraw", lifecycle.Actor("buyer", "b-3"), {})
    before = rows(shop.engine)
    stale = client.post(f"/console/dispute/{shop.dispute.id}/fire", data=form)
    assert stale.status_code == 409
    assert "was changed concurrently" in refusal_in(stale.text)
    assert rows(shop.engine) == before
    assert shop.engine.get("dispute", shop.dispute.id).state == "resolved_no_refund"


@pytest.mark.parametrize("csrf", [None, "", "0" * 64])
def test_a_form_without_the_sessions_csrf_token_is_refused_and_writes_nothing(
        client: TestClient, shop: Shop, csrf: str | None) -> None:
    before = rows(shop.engine)
    _, form = confirm_and_fire(client, "dispute", shop.dispute.id, "arbitrate",
                               {"f.decision": "no_refund"})
    if csrf is None:
        del form["csrf"]
    else:
        form["csrf"] = csrf
    for path in ("fire", "confirm"):
        refused = client.post(f"/console/dispute/{shop.dispute.id}/{path}", data=form)
        assert refused.status_code == 403
        assert refusal_in(refused.text).startswith(
            "the form's CSRF token is missing or not this session's: nothing was changed")
    assert rows(shop.engine) == before
    assert shop.engine.get("dispute", shop.dispute.id).state == "under_arbitration"


def test_a_form_that_is_not_urlencoded_is_refused(client: TestClient, shop: Shop) -> None:
    refused = client.post(f"/console/dispute/{shop.dispute.id}/fire", json={"trigger": "arbitrate"})
    assert refused.status_code == 400
    assert "application/x-www-form-urlencoded" in refused.text


# --- parked deadlines -------------------------------------------------------------------------


def test_the_parked_queue_lists_failed_deadlines_and_retry_queues_one_again(client: TestClient,
                                                                            shop: Shop) -> None:
    parked = park(shop, shop.paid.id)
    html = page_of(client, "/console/deadlines")
    assert f'<tr data-deadline="{parked}">' in html
    assert "AdapterError: gateway down" in html
    retried = client.post(f"/console/deadlines/{parked}/retry", data={"csrf": csrf_of(html)})
    assert retried.status_code == 303
    (found,) = shop.engine.deadlines(kind="order", id=shop.paid.id)
    assert (found.status, found.due_at, found.attempts) == ("pending", shop.clock.now(), 5)
    assert shop.engine.deadlines(failed=True) == []
    assert "No deadline is parked." in page_of(client, retried.headers["location"])


def test_retrying_what_is_not_parked_is_a_404_and_needs_the_csrf_token(client: TestClient,
                                                                       shop: Shop) -> None:
    parked = park(shop, shop.paid.id)
    csrf = csrf_of(page_of(client, "/console/deadlines"))
    assert client.post(f"/console/deadlines/{parked}/retry", data={"x": "1"}).status_code == 403
    assert shop.engine.deadlines(failed=True) != []
    missing = client.post("/console/deadlines/999999/retry", data={"csrf": csrf})
    assert missing.status_code == 404
    assert refusal_in(missing.text) == "no parked deadline with id '999999'"
    word = client.post("/console/deadlines/abc/retry", data={"csrf": csrf})
    assert word.status_code == 422


# --- simulations -----------------------------------------------------------------------------


def test_a_database_without_simulations_lists_none_and_is_not_altered(client: TestClient,
                                                                      shop: Shop) -> None:
    assert "No simulation has run on this database." in page_of(client, "/console/simulations")
    assert not inspect(shop.engine.database).has_table("simulation_runs")
    assert client.get("/console/simulations/sim").status_code == 404
    assert client.get("/console/simulations/sim/report.html").status_code == 404


def test_simulation_runs_are_listed_and_their_report_shown(tmp_path: Path) -> None:
    from lifecycle import simulation

    url = f"sqlite:///{tmp_path}/sim.db"
    simulation.simulate(url, sellers=2, orders=6, days=2, seed=3, name="tiny")
    with lifecycle.open(url) as engine:
        _, token = engine.create_key("operator", actor_id=OPERATOR_ID)
        from lifecycle.service import create_app

        with TestClient(create_app(engine), follow_redirects=False) as client:
            assert client.post("/console/login", data={"token": token}).status_code == 303
            before = rows(engine)
            listing = page_of(client, "/console/simulations")
            assert '<a href="/console/simulations/tiny">tiny</a></td><td>finished</td>' in listing
            run = page_of(client, "/console/simulations/tiny")
            assert 'src="/console/simulations/tiny/report.html"' in run
            report = page_of(client, "/console/simulations/tiny/report.html")
            assert "Simulation tiny: seed 3, 6 orders" in report
            assert "Order funnel" in report
            assert rows(engine) == before
            assert client.get("/console/simulations/other").status_code == 404


def test_pages_are_not_cached_and_allow_only_the_consoles_own_scripts(client: TestClient,
                                                                      shop: Shop) -> None:
    response = client.get(f"/console/order/{shop.paid.id}")
    assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "<script src=\"/console/static/console.js\" defer></script>" in response.text
    assert client.get("/console/static/console.css").status_code == 200


def test_a_form_larger_than_64_kib_is_refused_and_writes_nothing(client: TestClient,
                                                                shop: Shop) -> None:
    before = rows(shop.engine)
    refused = client.post(f"/console/dispute/{shop.dispute.id}/fire",
                          data={"trigger": "arbitrate", "note": "x" * 70_000})
    assert refused.status_code == 400
    assert refusal_in(refused.text) == "the form is larger than 64 KiB: nothing was changed"
    assert rows(shop.engine) == before


def test_only_operators_retry_a_parked_deadline(shop: Shop) -> None:
    parked = park(shop, shop.paid.id)
    with pytest.raises(lifecycle.Forbidden, match="only operators retry parked deadlines"):
        shop.engine.retry_deadline(parked, lifecycle.Actor("buyer", "b-1"))
    assert [d.status for d in shop.engine.deadlines(kind="order", id=shop.paid.id)] == ["failed"]
    with pytest.raises(lifecycle.NotFound):
        shop.engine.retry_deadline(parked + 1000, lifecycle.Actor("operator", OPERATOR_ID))


def test_the_banner_after_a_fire_says_only_what_the_history_says(client: TestClient, shop: Shop) -> None:
    forged = page_of(client, f"/console/dispute/{shop.dispute.id}?fired=arbitrate")
    assert 'id="done"' not in forged  # arbitrate is not the last row: nothing to announce
    said = page_of(client, f"/console/dispute/{shop.dispute.id}?fired=escalate")
    assert f"escalate fired by seller:s-1: dispute {shop.dispute.id} is under_arbitration" in said
    not_an_id = page_of(client, "/console/deadlines?retried=<b>x</b>")
    assert 'id="done"' not in not_an_id
    assert "&lt;b&gt;" not in not_an_id


def test_signing_in_from_another_sites_page_is_refused(anonymous: TestClient, shop: Shop) -> None:
    for origin in ("https://evil.example", "null"):
        refused = anonymous.post("/console/login", data={"token": shop.token},
                                 headers={"Origin": origin})
        assert refused.status_code == 403
        assert "set-cookie" not in refused.headers
    same = anonymous.post("/console/login", data={"token": shop.token},
                          headers={"Origin": "http://testserver"})
    assert same.status_code == 303


def test_a_disputed_orders_page_shows_its_paused_deadline_with_the_time_it_kept(
        client: TestClient, shop: Shop) -> None:
    order_id = shop.dispute.data["order"]
    (paused,) = [d for d in shop.engine.deadlines(kind="order", id=order_id) if d.status == "paused"]
    assert paused.remaining is not None
    shop.clock.advance(timedelta(days=2))  # a paused clock does not run
    html = page_of(client, f"/console/order/{order_id}")
    row = re.search(r'<tr class="deadline paused"><td>(\w+)</td>.*?<td class="left">(.*?)</td>', html, re.S)
    assert row, html
    assert row.group(1) == paused.trigger
    days, rest = divmod(int(paused.remaining.total_seconds()), 86400)
    assert row.group(2) == f"{days}d {rest // 3600:02d}h{rest % 3600 // 60:02d}m"
    assert "<td>buyer</td><td>b-3</td>" in html  # who may act
    scans = shop.engine.tracking(order_id)
    assert scans
    assert len(re.findall(r"<td>dhl</td><td>1234567891</td>", html)) == len(scans)


def test_a_search_stops_after_reading_its_limit_and_offers_the_next_page(
        client: TestClient, shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle.console import search

    monkeypatch.setattr(search, "SCAN_LIMIT", 2)
    monkeypatch.setattr(search, "_FIND_PAGE", 1)
    html = page_of(client, "/console/search?kind=order&buyer=b-3")
    assert "stopped after reading 2" in html
    assert 'id="next"' in html
    every: list[str] = []
    path = "/console/search?kind=order&buyer=b-3"
    for _page in range(5):
        html = page_of(client, path)
        every += hits(html)
        found = re.search(r'<a href="(/console/search\?[^"]+)" id="next">', html)
        if not found:
            break
        import html as html_module
        path = html_module.unescape(found.group(1))
    assert every == [shop.dispute.data["order"]]


def test_a_list_field_is_typed_comma_separated(client: TestClient, shop: Shop) -> None:
    from tests.builders import seller_in

    seller = seller_in(shop.engine, "under_review", "s-2")
    _, form = confirm_and_fire(client, "seller", seller.id, "reject",
                               {"f.reasons": "licence unreadable, name differs"})
    assert client.post(f"/console/seller/{seller.id}/fire", data=form).status_code == 303
    last = shop.engine.history("seller", seller.id)[-1]
    assert (last.trigger, last.payload["reasons"]) == ("reject", ["licence unreadable", "name differs"])
    assert shop.engine.get("seller", seller.id).state == "authentication_rejected"


@pytest.mark.parametrize("kind", sorted(lifecycle.definitions()))
def test_every_machine_draws_each_state_once_with_the_current_one_highlighted(kind: str) -> None:
    definition = lifecycle.definition(kind)
    for state in definition.states:
        svg = diagram.svg(definition, state)
        assert sorted(re.findall(r'data-state="(\w+)"', svg)) == sorted(definition.states)
        assert re.findall(r'class="state current[ \w]*" data-state="(\w+)"', svg) == [state]
