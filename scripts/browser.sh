#!/usr/bin/env bash
# The UI test drives Debian's Chromium (Playwright's own browser download is not possible
# offline). Install it when missing and we are allowed to (root); otherwise the test says why.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will fail" >&2
fi
exit 0
