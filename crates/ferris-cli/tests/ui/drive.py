"""Drives headless Chromium (DevTools protocol) through the server's /ui page.

Usage: drive.py URL SCREENSHOT_DIR APPEND_FILE ROWS NODE

Loads URL, waits for two live updates, records every node's health colour and the edge
count, saves before.png; appends ROWS rows to APPEND_FILE (the job's followed input) and
waits until NODE turns 'backpressured', saves after.png; clicks NODE and records the
panel's text. Prints one JSON object.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

url, shots, append_file, rows, watched = sys.argv[1:6]
rows = int(rows)

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
profile = tempfile.mkdtemp()
browser = subprocess.Popen(
    [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--remote-debugging-port={port}", "--remote-allow-origins=*",
        f"--user-data-dir={profile}", "--window-size=1400,900", "about:blank",
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)


def fail(message):
    browser.kill()
    print(json.dumps({"error": message}))
    sys.exit(1)


deadline = time.time() + 30
targets = None
while time.time() < deadline:
    try:
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        if any(t.get("type") == "page" for t in targets):
            break
    except OSError:
        pass
    time.sleep(0.2)
if not targets:
    fail("chromium did not open its debugging port")
page = next(t for t in targets if t.get("type") == "page")
ws = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=30)
next_id = 0


def call(method, params=None):
    global next_id
    next_id += 1
    ws.send(json.dumps({"id": next_id, "method": method, "params": params or {}}))
    while True:
        msg = json.loads(ws.recv())
        if msg.get("id") == next_id:
            if "error" in msg:
                fail(f"{method}: {msg['error']}")
            return msg["result"]


def evaluate(expr):
    r = call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
    return r["result"].get("value")


def wait(expr, secs, what):
    end = time.time() + secs
    while time.time() < end:
        if evaluate(expr):
            return
        time.sleep(0.2)
    fail(f"timed out waiting for {what}: {evaluate(STATE)}")


def screenshot(name):
    data = call("Page.captureScreenshot", {"format": "png"})["data"]
    with open(os.path.join(shots, name), "wb") as f:
        f.write(base64.b64decode(data))


STATE = """JSON.stringify({
  nodes: [...document.querySelectorAll('#graph g.node')].map(g => ({
    id: g.dataset.id, health: g.dataset.health || null,
    fill: g.querySelector('rect').getAttribute('fill')})),
  edges: document.querySelectorAll('#graph line.edge').length,
  updates: Number(document.getElementById('status').dataset.updates || 0)})"""
UPDATES = "Number(document.getElementById('status').dataset.updates || 0)"

call("Page.enable")
call("Runtime.enable")
call("Page.navigate", {"url": url})
wait(f"{UPDATES} >= 2", 30, "two live updates")
before = json.loads(evaluate(STATE))
screenshot("before.png")
with open(append_file, "a") as f:
    for i in range(rows):
        f.write(f"AAPL,{100 + i % 50}.25,{i % 900 + 1},2024-01-01T00:00:00Z\n")
wait(
    f"document.querySelector('#graph g.node[data-id=\"{watched}\"]').dataset.health === 'backpressured'",
    60,
    f"{watched} to turn backpressured",
)
after = json.loads(evaluate(STATE))
screenshot("after.png")
evaluate(
    f"document.querySelector('#graph g.node[data-id=\"{watched}\"]')"
    ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
)
wait(
    "(document.querySelector('#panel .errors') || {}).textContent !== undefined && "
    "document.querySelector('#panel .errors').textContent !== 'loading…'",
    20,
    "the node panel",
)
panel = evaluate("document.getElementById('panel').innerText")
screenshot("panel.png")
ws.close()
browser.kill()
print(json.dumps({"before": before, "after": after, "panel": panel}))
