"""Runs the Python reference as its CLI does: one register per workspace, then
one heartbeat thread each, with the interval passed to its loop. The one
import from the rest of its runtime, platform_inbound_auth.save_inbound_secret,
is stood in by an atomic 0600 write like the original."""
import json, os, sys, tempfile, threading, time, types

ref_dir, url, workspaces_file, interval, duration, configs = sys.argv[1:7]
sys.path.insert(0, ref_dir)

def save_inbound_secret(secret):
    os.makedirs(configs, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=configs)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    os.replace(tmp, os.path.join(configs, ".platform_inbound_secret"))

stub = types.ModuleType("platform_inbound_auth")
stub.save_inbound_secret = save_inbound_secret
sys.modules["platform_inbound_auth"] = stub
import mcp_heartbeat  # noqa: E402

workspaces = json.load(open(workspaces_file))
for ws in workspaces:
    mcp_heartbeat.platform_register(url, ws["id"], ws["token"])
for ws in workspaces:
    threading.Thread(target=mcp_heartbeat.heartbeat_loop, args=(url, ws["id"], ws["token"], float(interval)), daemon=True).start()
time.sleep(float(duration))
