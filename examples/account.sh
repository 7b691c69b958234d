#!/usr/bin/env bash
# The seller's account after onboarding (SPEC §12, issue #20), on a sandbox database: a staff
# sub-account ships within its permissions, penalty points refuse new orders at 24 and suspend
# the store at 48, a released order earns points that are redeemed, buyer and seller exchange
# messages, and a profile shows a buyer only what its privacy lets them see.
# Runs on a fresh SQLite file (LIFECYCLE_DB, default ./account.db, removed first).
set -euo pipefail
export LIFECYCLE_DB="${LIFECYCLE_DB:-sqlite:///account.db}"
case "$LIFECYCLE_DB" in sqlite:///*) rm -f "${LIFECYCLE_DB#sqlite:///}"{,-wal,-shm} ;; esac
export USER="${USER:-ops}"
lc() { echo "\$ lifecycle $*" >&2; lifecycle "$@"; }

lc db init --sandbox --start 2026-03-01T09:00:00 > /dev/null
lc seller register acme --company-name "Acme Trading Co., Ltd." --entity-type company \
  --country CN --registration-number 91310000MA1FL4XX --email owner@acme.example > /dev/null
lc seller submit-documents acme --business-licence BL-1 --payment-account-authentication alipay-corp-1 \
  --product robot --payment-method alipay-corp-1 > /dev/null
lc seller approve acme > /dev/null
lc seller pay-fee acme --sales-plan standard --category toys > /dev/null
lc seller complete-profile acme --store-name "Acme Toys" --domain acme > /dev/null
place() {
  lc order place --id "$1" --as ana --seller acme --line robot:2:19.99 --currency USD \
    --consignee-name "Ana Silva" --consignee-address "Rua A 1, Lisboa" --consignee-country PT \
    --carrier dhl --service express --shipping-fee 7.50 --delivery-days 20
}

# Staff: acme/ships may ship the store's orders, and nothing else.
lc subaccount create acme/ships --permission ship_orders --as seller:acme
place o-1 > /dev/null
lc order pay o-1 --as ana > /dev/null
lc subaccount create acme/more --none --as seller:acme/ships || echo "# refused: the owner alone" >&2
lc order ship-offline o-1 --as seller:acme/ships --carrier dhl --waybill 1234567891 --confirm all
lc order history o-1 | tail -1

# Messages on the order, each side with its own labels and unread count.
lc message send o-1 --text "Is the robot gift-wrapped?" --as buyer:ana > /dev/null
lc message unread --as seller:acme

# Points: the order's funds are released (by the sandbox's timers) and it earns 10 points.
lc order track o-1 --status delivered --as system:dhl > /dev/null
lc clock advance 20d > /dev/null
lc points show acme --as acme

# Penalty points: 24 refuse new orders, 48 suspend the store through onboarding's suspend.
lc violation record acme --type fraud --id v-1 > /dev/null
lc standing show acme | head -3
place o-2 || echo "# refused: 24 penalty points" >&2
lc violation record acme --type fraud --id v-2 > /dev/null
lc seller show acme --history 1 | head -2

# Profile: a buyer sees only what the seller made visible to all users.
lc profile create acme --name "Li Wei" --gender male --industry toys --frequency monthly \
  --personal nobody --procurement all_users > /dev/null
lc profile show acme --as buyer:ana
lc check
