"""Drives obshell's own Python SDK (PyPI obshell 0.0.9), unchanged, against the
exporter's session API: discovery, hybrid-encryption auth, and every session call
it offers but kill. Prints one JSON object with what each call returned; an
OBShellHandleError is reported as {"error": [code, errCode]}.

Usage: obshell_sdk.py HOST PORT PASSWORD TENANT APP_USER DB CLIENT_IP SERVER_IP
       obshell_sdk.py header PUBLIC_KEY PASSWORD TS URI
       obshell_sdk.py kill HOST PORT PASSWORD TENANT query|session ID[,ID...]
       obshell_sdk.py deadlocks HOST PORT PASSWORD TENANT [PAGE SIZE]
The second form prints an X-OCS-Header made the SDK's way, for any ts and uri; the
third calls kill_tenant_session_query or kill_tenant_sessions and prints
{"ok": ...} or {"error": [code, errCode, message]}; the fourth calls
get_tenant_deadlocks (with the SDK's defaults when PAGE and SIZE are not given) and
prints {"page": [...], "contents": [...]} or the error.
"""
import json
import sys

from obshell import ClientV1, OBShellHandleError
from obshell.auth.password import PasswordAuth, PasswordAuthMethodV2

if sys.argv[1] == "header":
    public_key, password, ts, uri = sys.argv[2:6]
    method = PasswordAuthMethodV2(password, None, 60)
    method.pk = public_key
    print(method.encrypt_header({"auth": password, "ts": ts, "uri": uri, "keys": ""}))
    sys.exit(0)

if sys.argv[1] == "kill":
    host, port, password, tenant, what, ids = sys.argv[2:8]
    client = ClientV1(host, int(port), PasswordAuth(password))
    ids = [int(i) for i in ids.split(",")]
    try:
        if what == "query":
            ok = client.kill_tenant_session_query(tenant, ids)
        else:
            ok = client.kill_tenant_sessions(tenant, ids)
        print(json.dumps({"ok": ok}))
    except OBShellHandleError as err:
        print(json.dumps({"error": [err.code, err.err_code, err.message]}))
    sys.exit(0)

if sys.argv[1] == "deadlocks":
    host, port, password, tenant = sys.argv[2:6]
    client = ClientV1(host, int(port), PasswordAuth(password))
    try:
        if len(sys.argv) > 6:
            answer = client.get_tenant_deadlocks(tenant, int(sys.argv[6]), int(sys.argv[7]))
        else:
            answer = client.get_tenant_deadlocks(tenant)
        p = answer.page
        print(json.dumps({
            "page": [p.total_elements, p.total_pages, p.size, p.number],
            "contents": [{"event_id": d.event_id, "report_time": d.report_time, "size": d.size,
                          "nodes": [n.raw_data for n in d.nodes]} for d in answer.contents],
        }))
    except OBShellHandleError as err:
        print(json.dumps({"error": [err.code, err.err_code, err.message]}))
    sys.exit(0)

host, port, password, tenant, app, db, client_ip, server_ip = sys.argv[1:9]
client = ClientV1(host, int(port), PasswordAuth(password))
out = {}


def ids(page):
    return sorted(s.id for s in page.contents)


def page_info(page):
    p = page.page
    return [p.total_elements, p.total_pages, p.size, p.number]


everything = client.get_tenant_sessions(tenant)  # page=1, size=sys.maxsize
out["default"] = {"page": page_info(everything), "users": sorted({s.user for s in everything.contents})}
mine = client.get_tenant_sessions(tenant, user=app)
out["app"] = {"page": page_info(mine), "ids": ids(mine)}
second = client.get_tenant_sessions(tenant, page=2, size=2, user=app, sort="id,asc")
out["app_page2"] = {"page": page_info(second), "ids": [s.id for s in second.contents]}
busy = client.get_tenant_sessions(tenant, user=app, db=db, client_ip=client_ip, active_only=True)
out["busy"] = {"ids": ids(busy), "states": sorted({s.state for s in busy.contents})}
on_server = client.get_tenant_sessions(tenant, user=app, svr_ip=server_ip)
out["on_server"] = ids(on_server)
one = client.get_tenant_session(tenant, str(out["busy"]["ids"][0]))
out["detail"] = {"id": one.id, "user": one.user, "info": one.info}
stats = client.get_tenant_sessions_stats(tenant)
out["stats"] = {u.user_name: [u.total_count, u.active_count] for u in stats.user_stats if u.user_name == app}
try:
    ClientV1(host, int(port), PasswordAuth(password + "-wrong")).get_tenant_sessions(tenant)
    out["wrong_password"] = "accepted"
except OBShellHandleError as err:
    out["wrong_password"] = {"error": [err.code, err.err_code]}
print(json.dumps(out))
