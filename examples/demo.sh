#!/usr/bin/env bash
# The main job, from a terminal: a seller onboards, a buyer orders, the order ships, is
# delivered and confirmed, funds are released; a second order goes into a dispute and is refunded.
# Runs on a fresh SQLite file (LIFECYCLE_DB, default ./demo.db, removed first).
set -euo pipefail
export LIFECYCLE_DB="${LIFECYCLE_DB:-sqlite:///demo.db}"
case "$LIFECYCLE_DB" in sqlite:///*) rm -f "${LIFECYCLE_DB#sqlite:///}"{,-wal,-shm} ;; esac
export USER="${USER:-ops}"  # operator commands act as operator:$USER
lc() { echo "\$ lifecycle $*" >&2; lifecycle "$@"; }

# A seller onboards: a company registers, is authenticated, pays the annual fee, opens the store.
lc db init  # only `db init` and `db upgrade` create a database; other commands refuse a missing one
lc seller register acme --company-name "Acme Trading Co., Ltd." --entity-type company \
  --country CN --registration-number 91310000MA1FL4XX --email owner@acme.example
lc seller submit-documents acme --business-licence BL-1 --payment-account-authentication alipay-corp-1 \
  --product robot --payment-method alipay-corp-1
lc seller approve acme --note "licence and payment account verified"
lc seller pay-fee acme --sales-plan standard --category toys
lc seller complete-profile acme --store-name "Acme Toys" --domain acme

# A buyer orders two robots, shipped by DHL Express to Lisbon: 2 x 19.99 + 7.50 = 47.48.
place() {
  lc order place --id "$1" --as ana --seller acme --line robot:2:19.99 --currency USD \
    --consignee-name "Ana Silva" --consignee-address "Rua A 1, Lisboa" --consignee-country PT \
    --carrier dhl --service express --shipping-fee 7.50 --delivery-days 20
}
place o-1001
lc order pay o-1001 --as system:gateway --key pay-cb-1 --payment-ref pay-991 --amount 47.48
lc order pay o-1001 --as system:gateway --key pay-cb-1 --payment-ref pay-991 --amount 47.48  # a duplicate callback: no change
lc order ship-offline o-1001 --as acme --carrier dhl --waybill 1234567891 --confirm all
lc order track o-1001 --status in_transit --as system:dhl --location Leipzig
lc order track o-1001 --status delivered --as system:dhl --location Lisboa
lc order confirm o-1001 --as ana
lc order release o-1001 --note "released early for the demo"
lc order show o-1001

echo "# refused: a buyer may not ship; nothing changes (exit code $(lifecycle order ship-offline o-1001 --as buyer:ana --carrier dhl --waybill 1234567891 --confirm all 2>/dev/null; echo $?))" >&2

# A second order arrives damaged: the buyer opens a dispute, the seller accepts the claim.
place o-1002
lc order pay o-1002 --as ana
lc order ship-offline o-1002 --as acme --carrier dhl --waybill 1234567902 --confirm all
lc order track o-1002 --status delivered --as system:dhl
lc dispute open o-1002 --as ana --type received --reason damage --refund-amount 47.48 \
  --evidence "photo: the robot's arm is broken"
lc dispute accept o-1002-d1 --as acme
lc order show o-1002 --history 3
lc order list --seller acme
lc check
