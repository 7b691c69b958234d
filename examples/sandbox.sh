#!/usr/bin/env bash
# Time you can move: on a sandbox database (its clock stored in it), the waits the spec names
# pass with `lifecycle clock advance` instead of days of waiting. An order is delivered and
# confirms itself 5 days later, its funds are released 15 days after that; another order's
# buyer may claim non-delivery only 10 days after shipping, and escalate from day 4.
# Runs on a fresh SQLite file (LIFECYCLE_DB, default ./sandbox.db, removed first).
set -euo pipefail
export LIFECYCLE_DB="${LIFECYCLE_DB:-sqlite:///sandbox.db}"
case "$LIFECYCLE_DB" in sqlite:///*) rm -f "${LIFECYCLE_DB#sqlite:///}"{,-wal,-shm} ;; esac
export USER="${USER:-ops}"
lc() { echo "\$ lifecycle $*" >&2; lifecycle "$@"; }

lc db init --sandbox --start 2026-03-01T09:00:00
lc seller register acme --company-name "Acme Trading Co., Ltd." --entity-type company \
  --country CN --registration-number 91310000MA1FL4XX --email owner@acme.example
lc seller submit-documents acme --business-licence BL-1 --payment-account-authentication alipay-corp-1 \
  --product robot --payment-method alipay-corp-1
lc seller approve acme
lc seller pay-fee acme --sales-plan standard --category toys
lc seller complete-profile acme --store-name "Acme Toys" --domain acme
place() {
  lc order place --id "$1" --as ana --seller acme --line robot:2:19.99 --currency USD \
    --consignee-name "Ana Silva" --consignee-address "Rua A 1, Lisboa" --consignee-country PT \
    --carrier dhl --service express --shipping-fee 7.50 --delivery-days 20
  lc order pay "$1" --as ana
  lc order ship-offline "$1" --as acme --carrier dhl --waybill "$2" --confirm all
}

# Delivered, never confirmed by the buyer: auto_confirm on day 5, release_funds 15 days later.
place o-1 1234567891
lc order track o-1 --status delivered --as system:dhl
lc clock show
lc clock advance 20d
lc order show o-1 --history 2

# Shipped, never arrives: a not_received claim opens 10 days after shipping.
place o-2 1234567902
lc dispute open o-2 --as ana --type not_received --reason still_in_transit --refund-amount 47.48 \
  || echo "# refused: too early" >&2
lc clock advance 10d
lc dispute open o-2 --as ana --type not_received --reason still_in_transit --refund-amount 47.48
lc dispute counter o-2-d1 --as acme --refund-amount 20.00
lc dispute escalate o-2-d1 --as buyer:ana || echo "# refused: the buyer escalates from day 4" >&2
lc clock advance 3d --json
lc dispute escalate o-2-d1 --as buyer:ana
lc check
