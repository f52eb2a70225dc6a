"""
C{txrevproxy check --diff}: what a new configuration changes, in words,
table by table, and what of it a reload cannot apply.

Both sides are effective configurations as C{txrevproxy check --dump}
writes them (L{txrevproxy.config.dump.dumped}): the running proxy's comes
from its admin API (C{GET /config}), an old file's is written here, so
that defaults, included files and variables are compared as the proxy
sees them, not as the files spell them.  Named tables are compared by
name; routes by their C{name} when they have one, else by position.  What
needs a restart is what the proxy itself refuses to reload
(L{restart_only_changes}, and L{moved_listeners} when it runs workers).
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..app.service import moved_listeners, restart_only_changes
from ..config.dump import REDACTED, redacted
from ..config.environment import substitute
from ..config.load import model_of
from ..config.schema import key_path
from ..config.writer import inline

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

#: The tables of one instance, then those of many by name, in the order
#: of the docs.
SINGLE_TABLES = ("server", "log", "admin", "tracing")
NAMED_TABLES = ("listeners", "tls", "upstreams", "filters", "caches", "redis")

#: The table keys of a route (array indexes are left out of them).
ROUTE = ("routes",)

#: Said once when routes without a name were compared.
POSITION_NOTE = (
    "note: routes without a name are compared by position, so a route "
    "added or moved before them makes them read as changed; give routes a "
    "name to compare them by name (their order matters too: it breaks ties "
    "between routes of the same path)"
)


def effective_document(text: str) -> Dict[str, Any]:
    """
    The document of an effective configuration as dumped: its TOML, with
    the escapes of the dump undone (it is substituted with no variables).
    """
    return substitute(tomllib.loads(text), {})[0]


def _shown(value: Any, keys: Tuple[str, ...]) -> str:
    return inline(redacted(value, keys))


def _differences(old: Any, new: Any, path: str, keys: Tuple[str, ...]) -> List[str]:
    """
    A line for each key that differs between two values of C{path}, found
    under the table keys C{keys}: tables key by key, arrays of tables item
    by item, anything else whole; secrets read as the dump writes them
    (L{redacted}), and a change that only they hide is said without them.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in list(old) + [key for key in new if key not in old]:
            where, inner = path + key_path(key), keys + (key,)
            if key not in new:
                lines.append("%s: removed (was %s)" % (where, _shown(old[key], inner)))
            elif key not in old:
                lines.append("%s: added: %s" % (where, _shown(new[key], inner)))
            else:
                lines.extend(_differences(old[key], new[key], where, inner))
        return lines
    if _tables(old) and _tables(new):
        lines = []
        for index in range(max(len(old), len(new))):
            where = "%s[%d]" % (path, index)
            if index >= len(new):
                lines.append("%s: removed (was %s)" % (where, _shown(old[index], keys)))
            elif index >= len(old):
                lines.append("%s: added: %s" % (where, _shown(new[index], keys)))
            else:
                lines.extend(_differences(old[index], new[index], where, keys))
        return lines
    if old == new:
        return []
    before, after = _shown(old, keys), _shown(new, keys)
    if before == after:
        return ["%s: changed (a secret, not shown)" % (path,)]
    return ["%s: %s -> %s" % (path, before, after)]


def _tables(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _compared(
    label: str,
    old: Optional[dict],
    new: Optional[dict],
    keys: Tuple[str, ...],
    extra: Sequence[str] = (),
) -> List[str]:
    """
    The lines of one table: added, removed, or changed with a line per
    key (indented, key paths relative to the table).

    @param keys: the table keys of the table from the top of the document
        (C{("upstreams", "app")}), which say what in it is a secret.
    """
    if old is None:
        return ["%s: added" % (label,)]
    if new is None:
        return ["%s: removed" % (label,)]
    lines = list(extra) + [line.lstrip(".") for line in _differences(old, new, "", keys)]
    if not lines:
        return []
    return ["%s: changed" % (label,)] + ["    " + line for line in lines]


def _route_pairs(
    old: List[dict], new: List[dict]
) -> List[Tuple[Optional[int], Optional[int]]]:
    """
    The routes of both sides paired: by name when named, else by position
    among the routes without a name; C{(old index, new index)}, either
    L{None} for a route on one side only, in the order of the new file
    then the removed ones.
    """
    named = {route["name"]: index for index, route in enumerate(old) if "name" in route}
    unnamed = iter([index for index, route in enumerate(old) if "name" not in route])
    pairs: List[Tuple[Optional[int], Optional[int]]] = []
    for index, route in enumerate(new):
        if "name" in route:
            pairs.append((named.get(route["name"]), index))
        else:
            pairs.append((next(unnamed, None), index))
    kept = {pair[0] for pair in pairs}
    pairs.extend((index, None) for index in range(len(old)) if index not in kept)
    return pairs


def _route_label(routes: List[dict], index: int) -> str:
    name = routes[index].get("name")
    if name is None:
        return "routes[%d]" % (index,)
    return "routes[%d] (name %s)" % (index, inline(name))


def route_changes(old: List[dict], new: List[dict]) -> List[str]:
    """
    The lines of the routes that differ, with L{POSITION_NOTE} when routes
    without a name were among them.
    """
    lines: List[str] = []
    by_position = False
    for before, after in _route_pairs(old, new):
        if after is None:
            found = _compared(_route_label(old, before), old[before], None, ROUTE)
        elif before is None:
            found = _compared(_route_label(new, after), None, new[after], ROUTE)
        else:
            moved = []
            if before != after:
                moved = ["position: routes[%d] -> routes[%d]" % (before, after)]
            found = _compared(
                _route_label(new, after), old[before], new[after], ROUTE, moved
            )
        unnamed = all(
            index is None or "name" not in routes[index]
            for routes, index in ((old, before), (new, after))
        )
        by_position = by_position or bool(found and unnamed)
        lines.extend(found)
    if lines and by_position:
        lines.append(POSITION_NOTE)
    return lines


def restart_lines(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """
    What the change needs a restart for, as the proxy itself would refuse
    it on reload (the same functions decide); else that a reload applies
    it all.
    """
    before, after = model_of(_with_a_token(old)), model_of(_with_a_token(new))
    refused = restart_only_changes(before, after)
    if before.server.workers > 1:
        refused = moved_listeners(before, after) + refused
    if not refused:
        return ["a reload applies all of it (txrevproxy reload)"]
    return (
        ["needs a restart (a reload would not apply it):"]
        + ["    " + line for line in refused]
        + ["a reload applies the rest"]
    )


def _with_a_token(document: Dict[str, Any]) -> Dict[str, Any]:
    """
    C{document} with a token its model accepts in place of a redacted
    admin token (what the running proxy's configuration has), so that
    its C{[admin]} table is in the model: only where the admin API
    listens is compared.
    """
    admin = document.get("admin")
    if not isinstance(admin, dict) or admin.get("token") != REDACTED:
        return document
    return dict(document, admin=dict(admin, token="redacted"))


def changes(old_text: str, new_text: str) -> List[str]:
    """
    In words, what going from one effective configuration to another
    changes: a table at a time (C{[server]}, C{[log]}, C{[admin]}, then
    listeners, TLS, upstreams, filters, caches by name, then routes), and
    what needs a restart; or that nothing changes.

    @param old_text: the old effective configuration (TOML, as dumped).
    @param new_text: the new one, with secrets shown or redacted as in
        C{old_text} (two redacted secrets compare equal, so a change of
        a secret cannot be seen between redacted configurations).
    """
    old, new = effective_document(old_text), effective_document(new_text)
    lines: List[str] = []
    for table in SINGLE_TABLES:
        if table in old or table in new:
            lines.extend(
                _compared("[%s]" % (table,), old.get(table), new.get(table), (table,))
            )
    for table in NAMED_TABLES:
        before, after = old.get(table, {}), new.get(table, {})
        for name in list(before) + [name for name in after if name not in before]:
            lines.extend(
                _compared(
                    table + key_path(name), before.get(name), after.get(name), (table, name)
                )
            )
    lines.extend(route_changes(old.get("routes", []), new.get("routes", [])))
    if not lines:
        return ["no changes"]
    return lines + restart_lines(old, new)
