"""
A headless Chromium driven over the DevTools protocol, for the tests of
the admin status page.

Chromium's C{--remote-debugging-pipe} takes protocol messages on its file
descriptor 3 and answers on 4, each a JSON object ended by a NUL byte;
Twisted's C{spawnProcess} wires both, so no WebSocket client (and no
browser download, which Selenium or Playwright would need) is involved.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater

#: The names Chromium's binary goes by (Debian's package is C{chromium}).
BINARIES = ("chromium", "chromium-browser", "google-chrome")

#: Seconds a DevTools command may take.
COMMAND_TIMEOUT = 30.0


def chromium() -> Optional[str]:
    """
    The path of the Chromium installed, or L{None}.
    """
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class DevToolsError(Exception):
    """
    Chromium answered a command with an error.
    """


class Browser(ProcessProtocol):
    """
    A headless Chromium with one page, and the commands sent to it.

    @ivar ended: fires when the process ended.
    """

    def __init__(self, reactor) -> None:
        self._reactor = reactor
        self._next = 0
        self._answers: Dict[int, Deferred] = {}
        self._partial = b""
        self.session: Optional[str] = None
        self.ended: Deferred = Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd != 4:
            return
        self._partial += data
        *messages, self._partial = self._partial.split(b"\0")
        for message in messages:
            answer = json.loads(message)
            d = self._answers.pop(answer.get("id"), None)
            if d is None:
                continue  # an event
            if "error" in answer:
                d.errback(DevToolsError(answer["error"]))
            else:
                d.callback(answer["result"])

    def processEnded(self, reason) -> None:
        answers, self._answers = self._answers, {}
        for d in answers.values():
            d.errback(DevToolsError("chromium ended"))
        self.ended.callback(None)

    def send(self, method: str, params: Optional[dict] = None, page: bool = True) -> Deferred:
        """
        Send a command (to the page, or to the browser); a L{Deferred} of
        its result.
        """
        self._next += 1
        message: Dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        d: Deferred = Deferred()
        self._answers[self._next] = d
        self.transport.writeToChild(3, json.dumps(message).encode() + b"\0")
        return d.addTimeout(COMMAND_TIMEOUT, self._reactor)

    @inlineCallbacks
    def evaluate(self, expression: str):
        """
        The value of a JavaScript expression in the page.
        """
        result = yield self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        return result["result"].get("value")

    @inlineCallbacks
    def wait_for(self, expression: str, expected, attempts: int = 300):
        """
        Evaluate C{expression} every tenth of a second until it is
        C{expected} (at most C{attempts} times); its last value.
        """
        for _ in range(attempts):
            value = yield self.evaluate(expression)
            if value == expected:
                break
            yield deferLater(self._reactor, 0.1, lambda: None)
        return value

    @inlineCallbacks
    def screenshot(self, path: Path):
        """
        Save what the page shows as a PNG at C{path}.
        """
        shot = yield self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> Deferred:
        if not self.ended.called:
            self.send("Browser.close", page=False).addErrback(lambda _: None)
        return self.ended


@inlineCallbacks
def open_page(reactor, case, url: str, profile: Path, width: int = 1200, height: int = 900):
    """
    Start a headless Chromium showing C{url}, closed after the test.

    @param profile: an empty directory for its profile.
    @return: a L{Deferred} of the L{Browser}, once its page is attached.
    """
    browser = Browser(reactor)
    arguments = [
        chromium(),
        "--headless",
        "--no-sandbox",  # Tests may run as root, which the sandbox refuses.
        "--disable-gpu",
        "--no-first-run",
        "--remote-debugging-pipe",
        "--user-data-dir=%s" % (profile,),
        "--window-size=%d,%d" % (width, height),
        "about:blank",
    ]
    reactor.spawnProcess(
        browser,
        arguments[0],
        arguments,
        env=None,
        childFDs={0: "w", 1: "r", 2: "r", 3: "w", 4: "r"},
    )
    case.addCleanup(browser.close)
    targets = yield browser.send("Target.getTargets", page=False)
    [page] = [each for each in targets["targetInfos"] if each["type"] == "page"]
    attached = yield browser.send(
        "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, page=False
    )
    browser.session = attached["sessionId"]
    yield browser.send("Page.navigate", {"url": url})
    return browser
