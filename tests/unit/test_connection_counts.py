"""
The connection counts of C{max_connections_per_ip}: a process's own, and
those shared through Redis, on a fake client and a L{Clock}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from txrevproxy.redis.client import StoreUnavailable
from txrevproxy.server.connection_counts import (
    CHANGE,
    EXPIRY,
    INSTANCES,
    SYNC,
    SYNC_INTERVAL,
    ConnectionCounts,
    SharedConnectionCounts,
)

from ..support.configs import document, parse, problems

KEY = b"txrevproxy:conn:here:1:x"


class Client:
    """
    Answers each script call with the next of C{answers} (a Deferred).
    """

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def evalsha(self, script, keys, arguments):
        self.calls.append((script, tuple(keys), tuple(arguments)))
        return self.answers.pop(0) if self.answers else Deferred()


def test_local_counts_forget_closed_addresses():
    counts = ConnectionCounts()
    assert counts.count(b"a", 1) is None
    counts.count(b"a", 1)
    counts.count(b"a", -1)
    assert counts.total(b"a") == 1
    counts.count(b"a", -1)
    assert counts.counts == {}


def test_first_connection_waits_for_the_other_processes_count():
    answer = Deferred()
    client = Client(answer)
    listener = SharedConnectionCounts(client, Clock(), KEY).listener("web")
    waiting = listener.count(b"192.0.2.1", 1)
    assert client.calls == [(CHANGE, (KEY, INSTANCES), (b"web\x00192.0.2.1", 1, EXPIRY))]
    assert not waiting.called and listener.total(b"192.0.2.1") == 1
    answer.callback(4)  # three on other processes
    assert waiting.called and listener.total(b"192.0.2.1") == 4
    # Known now: the next connection does not wait, and is judged at once.
    assert listener.count(b"192.0.2.1", 1) is None
    assert listener.total(b"192.0.2.1") == 5


def test_what_others_hold_is_forgotten_with_the_last_connection():
    listener = SharedConnectionCounts(Client(succeed(3), succeed(2)), Clock(), KEY).listener("web")
    listener.count(b"192.0.2.1", 1)
    listener.count(b"192.0.2.1", -1)
    assert listener.total(b"192.0.2.1") == 0
    assert listener.count(b"192.0.2.1", 1) is not None


def test_redis_down_counts_only_this_process():
    listener = SharedConnectionCounts(
        Client(fail(StoreUnavailable("down"))), Clock(), KEY
    ).listener("web")
    waiting = listener.count(b"192.0.2.1", 1)
    assert waiting.called and waiting.result is None
    assert listener.total(b"192.0.2.1") == 1


def test_every_count_is_written_again_while_running():
    clock = Clock()
    client = Client()
    shared = SharedConnectionCounts(client, clock, KEY)
    shared.listener("web").count(b"a", 1)
    shared.listener("api").count(b"b", 1)
    shared.listener("api").count(b"b", 1)
    shared.startService()
    client.calls = []
    clock.advance(SYNC_INTERVAL)
    assert client.calls == [
        (SYNC, (KEY, INSTANCES), (EXPIRY, b"web\0a", 1, b"api\0b", 2))
    ]
    shared.stopService()
    assert not clock.getDelayedCalls()


def test_the_connection_store_names_a_redis_table():
    server = 'max_connections_per_ip = 10\nmax_connections_per_ip_store = "redis:shared"'
    config = parse(
        document(server=server, extra='[redis.shared]\nurl = "redis://127.0.0.1"')
    )
    assert config.server.max_connections_per_ip_store == "shared"
    assert problems(document(server=server)) == [
        "server.max_connections_per_ip_store: no [redis.shared] table; "
        "add one with its url"
    ]
