"""Drives headless Chromium over the DevTools protocol: loads the bridge's live page, reads the shown power, waits
for it to change without a reload, and takes screenshots at phone and desktop width.

Usage: page_check.py CHROMIUM URL OUT_DIR. Prints JSON: {"first": ..., "second": ..., "reloaded": bool, ...}."""

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

import aiohttp


async def main(chromium, url, out_dir):
    profile = tempfile.mkdtemp(prefix="p1-chromium-")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-extensions", "--lang=en-US", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.monotonic() > deadline:
                raise SystemExit("chromium did not open its debugging port")
            await asyncio.sleep(0.1)
        port = open(port_file).read().split()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 1 << 30))

                async def call(method, **params):
                    i = next(ids)
                    await ws.send_json({"id": i, "method": method, "params": params})
                    while True:
                        m = await ws.receive_json()
                        if m.get("id") == i:
                            if "error" in m:
                                raise SystemExit(f"{method}: {m['error']}")
                            return m["result"]

                async def js(expr):
                    r = await call("Runtime.evaluate", expression=expr, returnByValue=True)
                    return r["result"].get("value")

                await call("Page.enable")
                await call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
                await call("Page.navigate", url=url)
                power = "document.getElementById('power') && document.getElementById('power').textContent"

                async def wait_for(pred, what, timeout=20):
                    end = time.monotonic() + timeout
                    while time.monotonic() < end:
                        v = await js(power)
                        if pred(v):
                            return v
                        await asyncio.sleep(0.05)
                    raise SystemExit(f"timed out waiting for {what}; power shows {await js(power)!r}")

                first = await wait_for(lambda v: v and any(c.isdigit() for c in v), "a power value")
                await js("window.__sameDocument = 1")
                second = await wait_for(lambda v: v and v != first, "the power to change")
                reloaded = await js("window.__sameDocument") != 1
                state = await js("document.getElementById('state').textContent")
                await asyncio.sleep(1.5)  # a few more telegrams for the chart
                shots = {}
                for name, width, height, mobile in (("desktop", 1280, 900, False), ("phone", 390, 1100, True)):
                    await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)
                    await asyncio.sleep(1.2)  # let the next telegram redraw at this width
                    png = base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"])
                    path = os.path.join(out_dir, f"http-page-{name}.png")
                    with open(path, "wb") as f:
                        f.write(png)
                    shots[name] = {"path": path, "scroll_width": await js("document.documentElement.scrollWidth")}
                # Then the test stops the listener (its last status says closed): the page must say so plainly.
                open(os.path.join(out_dir, "stop-the-listener"), "w").close()
                end = time.monotonic() + 20
                gone = await js("document.getElementById('state').textContent")
                while gone != "listener gone" and time.monotonic() < end:
                    await asyncio.sleep(0.1)
                    gone = await js("document.getElementById('state').textContent")
                notice = await js("document.getElementById('notice').textContent")
                print(json.dumps({"first": first, "second": second, "reloaded": reloaded, "state": state,
                                  "gone_state": gone, "gone_notice": notice, "shots": shots}))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["rm", "-rf", profile], check=False)


asyncio.run(main(*sys.argv[1:4]))
