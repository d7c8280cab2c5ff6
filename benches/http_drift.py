"""Drift a `scimsync gen --serve` directory over SCIM, reproducibly: titles of TITLES IdP users,
DEACTIVATE IdP users deactivated, titles of EDITS app accounts hand-edited, each chosen by a
generator seeded with CYCLE. Used by benches/retention.sh and benches/lake-30-days.sh.

    python3 benches/http_drift.py IDP_URL APP_URL CYCLE USERS [TITLES DEACTIVATE EDITS]
"""
import json
import random
import sys
import urllib.request

idp, app, cycle, users = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
titles, deactivate, edits = (int(a) for a in (sys.argv[5:8] or ["20", "1", "5"]))
rnd = random.Random(cycle)


def call(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/scim+json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


def some(base, n):
    out = []
    for _ in range(n):
        page = call("GET", f"{base}/Users?startIndex={rnd.randrange(1, int(users * 0.9))}&count=1")
        out += [u["id"] for u in page.get("Resources", [])]
    return out


def patch(base, uid, ops):
    call("PATCH", f"{base}/Users/{uid}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})


for uid in some(idp, titles):
    patch(idp, uid, [{"op": "replace", "path": "title", "value": f"Title {cycle}"}])
for uid in some(idp, deactivate):
    patch(idp, uid, [{"op": "replace", "path": "active", "value": False}])
for uid in some(app, edits):
    patch(app, uid, [{"op": "replace", "path": "title", "value": f"Hand-edited {cycle}"}])
