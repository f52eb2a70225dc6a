"""
Tests for L{txrevproxy.app.service.restart_only_changes}: what a reload
refuses because only a restart can apply it.
"""

from __future__ import annotations

from txrevproxy.app.service import restart_only_changes

from ..support.configs import document, parse

ADMIN = '[admin]\nendpoint = "%s"\ntoken = "secret"\n'


def config(workers: int = 1, admin: str = ""):
    return parse(document(server="workers = %d" % (workers,), extra=admin))


def test_nothing_to_refuse():
    assert restart_only_changes(config(), config()) == []
    with_admin = config(admin=ADMIN % ("tcp:9901",))
    assert restart_only_changes(with_admin, with_admin) == []


def test_changing_the_number_of_workers_is_refused():
    assert restart_only_changes(config(1), config(2)) == [
        "server.workers: changed; this needs a restart"
    ]


def test_removing_the_admin_table_is_refused():
    """
    The admin API keeps listening until a restart: reloading without its
    table would leave it without its token.
    """
    assert restart_only_changes(config(admin=ADMIN % ("tcp:9901",)), config()) == [
        "admin: removed; the admin API listens on tcp:9901 until a restart, "
        "which this needs"
    ]


def test_adding_or_moving_the_admin_api_is_refused():
    assert restart_only_changes(config(), config(admin=ADMIN % ("tcp:9901",))) == [
        "admin: added; the admin API starts only at a restart"
    ]
    assert restart_only_changes(
        config(admin=ADMIN % ("tcp:9901",)), config(admin=ADMIN % ("tcp:9902",))
    ) == [
        "admin.endpoint: changed; the admin API listens on tcp:9901 until a "
        "restart, which this needs"
    ]


def test_a_new_token_is_applied_by_a_reload():
    rotated = ADMIN.replace("secret", "rotated")
    assert (
        restart_only_changes(
            config(admin=ADMIN % ("tcp:9901",)), config(admin=rotated % ("tcp:9901",))
        )
        == []
    )
