"""The console shows an order's messages on the order's page and on its dispute's (issue #20):
they are part of the order's record, which the operator reads beside the dispute."""

from __future__ import annotations

from fastapi.testclient import TestClient

import lifecycle
from tests.console.conftest import Shop


def test_a_disputes_page_shows_its_orders_messages(client: TestClient, shop: Shop) -> None:
    order = shop.dispute.data["order"]
    shop.engine.send_message(order, lifecycle.Actor("buyer", "b-3"), "it came broken")
    shop.engine.send_message(order, lifecycle.Actor("seller", "s-1"), "sorry <b>about</b> that")

    for path in (f"/console/dispute/{shop.dispute.id}", f"/console/order/{order}"):
        page = client.get(path)
        assert page.status_code == 200
        assert '<table id="messages">' in page.text
        assert "it came broken" in page.text
        assert "sorry &lt;b&gt;about&lt;/b&gt; that" in page.text  # escaped, as all text is
