#!/usr/bin/env bash
# The main job, from a terminal: a seller onboards, a buyer orders, the order ships, is
# delivered and confirmed, funds are released; a second order goes into a dispute and is refunded.
# Runs on a fresh SQLite file (LIFECYCLE_DB, default ./demo.db, removed first).
set -euo pipefail
export LIFECYCLE_DB="${LIFECYCLE_DB:-sqlite:///demo.db}"
case "$LIFECYCLE_DB" in sqlite:///*) rm -f "${LIFECYCLE_DB#sqlite:///}"{,-wal,-shm} ;; esac
lc() { echo "\$ lifecycle $*" >&2; lifecycle "$@"; }

lc db upgrade
lc create seller --as seller:acme --payload '{"company_name": "Acme Trading Co., Ltd.",
  "entity_type": "company", "country": "CN", "registration_number": "91310000MA1FL4XX",
  "email": "owner@acme.example"}'
lc fire seller acme submit_documents --as seller:acme --payload '{"business_licence": "BL-1",
  "payment_account_authentication": "alipay-corp-1", "product_list": ["robot"], "payment_method": "alipay-corp-1"}'
lc fire seller acme approve --as operator:ana
lc fire seller acme pay_fee --as seller:acme --payload '{"sales_plan": "standard", "category": "toys"}'
lc fire seller acme complete_profile --as seller:acme --payload '{"store_name": "Acme Toys", "domain": "acme"}'

order='{"seller": "acme", "currency": "USD",
  "lines": [{"sku": "robot", "quantity": 2, "unit_price": "19.99"}],
  "consignee": {"name": "Ana Silva", "address": "Rua A 1, Lisboa", "country": "PT"},
  "logistics": {"carrier": "dhl", "service": "express", "shipping_fee": "7.50", "delivery_days": 20}}'
lc create order --id o-1001 --as buyer:ana --payload "$order"
lc fire order o-1001 pay --as system:gateway --key pay-cb-1 --payload '{"amount": "47.48"}'
lc fire order o-1001 pay --as system:gateway --key pay-cb-1 --payload '{"amount": "47.48"}'  # a duplicate callback: no change
checklist='{"quantity": true, "model": true, "specification": true, "colour": true}'
lc fire order o-1001 ship_offline --as seller:acme --payload "{\"checklist\": $checklist, \"carrier\": \"dhl\", \"waybill\": \"1234567890\"}"
lc fire order o-1001 tracking_in_transit --as system:dhl
lc fire order o-1001 tracking_delivered --as system:dhl
lc fire order o-1001 confirm_receipt --as buyer:ana
lc fire order o-1001 release_funds --as system:timer
lc history order o-1001

echo "# refused: a buyer may not ship; nothing changes (exit code $(lifecycle fire order o-1001 ship_offline --as buyer:ana 2>/dev/null; echo $?))" >&2

lc create order --id o-1002 --as buyer:ana --payload "$order"
lc fire order o-1002 pay --as buyer:ana
lc fire order o-1002 ship_offline --as seller:acme --payload "{\"checklist\": $checklist, \"carrier\": \"dhl\", \"waybill\": \"1234567891\"}"
lc fire order o-1002 tracking_delivered --as system:dhl
lc fire order o-1002 open_dispute --as buyer:ana --payload '{"type": "received", "reason": "damage", "refund_amount": "47.48"}'
lc fire dispute o-1002-d1 accept_claim --as seller:acme
lc show order o-1002
