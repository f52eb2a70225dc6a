"""
The files a configuration names: checked when it is loaded (certificates,
keys, CAs, error pages), made absolute from the configuration's directory,
and error pages read into the model, so that nothing on the hot path
reads a file.
"""

from __future__ import annotations

import mimetypes
import os
from typing import Callable, Iterable, List, Optional, Tuple

import attr

from ..tls.files import FileProblem, collect, read_ca
from .model import Config, ErrorPage
from .schema import Problem, key_path

#: The directory relative paths at a key path (C{"tls.default"},
#: C{"routes[2]"}) are taken from: that of the file that holds it (see
#: L{txrevproxy.config.document.Origins.directory}).
Directories = Callable[[str], str]


def file_problems(config: Config, directory: Directories) -> Iterable[Problem]:
    """
    Read every certificate, key and CA file the configuration names, and
    report those that cannot be used (missing, unreadable, a key that does
    not match, expired), each with the file's name as written.
    """
    for block in config.tls.values():
        prefix = "tls" + key_path(block.name)
        base = directory(prefix)
        for path, message in collect(block, base).problems:
            yield (prefix + path, message)
        cas = [(".client_ca", block.client_ca)]
        if block.acme is not None:
            cas.append((".acme.ca_bundle", block.acme.ca_bundle))
        for key, ca in cas:
            if ca is not None:
                try:
                    read_ca(ca, base)
                except FileProblem as problem:
                    yield (prefix + key, problem.message)
    for upstream in config.upstreams.values():
        prefix = "upstreams" + key_path(upstream.name)
        base = directory(prefix)
        places = [(prefix + ".ca", upstream.ca)] + [
            ("%s.servers[%d].ca" % (prefix, index), server.ca)
            for index, server in enumerate(upstream.servers)
        ]
        for path, ca in places:
            if ca is not None:
                try:
                    read_ca(ca, base)
                except FileProblem as problem:
                    yield (path, problem.message)
    for redis in config.redis.values():
        prefix = "redis" + key_path(redis.name)
        if redis.ca is not None:
            try:
                read_ca(redis.ca, directory(prefix))
            except FileProblem as problem:
                yield (prefix + ".ca", problem.message)


def absolute_paths(config: Config, directory: Directories) -> Config:
    """
    The configuration with every file path absolute, taken from the
    directory of the file that names it, so that it means the same
    whatever the current directory is later.
    """

    def absolute(prefix: str, path: Optional[str]) -> Optional[str]:
        if path is None:
            return None
        return os.path.abspath(os.path.join(directory(prefix), path))

    tls = {}
    for block_name, block in config.tls.items():
        prefix = "tls" + key_path(block_name)
        tls[block_name] = attr.evolve(
            block,
            directory=absolute(prefix, block.directory),
            client_ca=absolute(prefix, block.client_ca),
            acme=(
                None
                if block.acme is None
                else attr.evolve(
                    block.acme,
                    storage=absolute(prefix, block.acme.storage),
                    ca_bundle=absolute(prefix, block.acme.ca_bundle),
                )
            ),
            certificates=tuple(
                attr.evolve(
                    spec,
                    cert=absolute(prefix, spec.cert),
                    key=absolute(prefix, spec.key),
                    ocsp=absolute(prefix, spec.ocsp),
                )
                for spec in block.certificates
            ),
        )
    upstreams = {}
    for upstream_name, upstream in config.upstreams.items():
        prefix = "upstreams" + key_path(upstream_name)
        upstreams[upstream_name] = attr.evolve(
            upstream,
            ca=absolute(prefix, upstream.ca),
            servers=tuple(
                attr.evolve(server, ca=absolute(prefix, server.ca))
                for server in upstream.servers
            ),
        )
    filters = {
        filter_name: attr.evolve(
            table, directory=os.path.abspath(directory("filters" + key_path(filter_name)))
        )
        for filter_name, table in config.filters.items()
    }
    caches = {
        cache_name: attr.evolve(
            cache, path=absolute("caches" + key_path(cache_name), cache.path)
        )
        for cache_name, cache in config.caches.items()
    }
    redis = {
        redis_name: attr.evolve(
            table, ca=absolute("redis" + key_path(redis_name), table.ca)
        )
        for redis_name, table in config.redis.items()
    }
    log = config.log
    if log.access not in (None, "-"):
        log = attr.evolve(log, access=absolute("log", log.access))
    return attr.evolve(
        config,
        tls=tls,
        upstreams=upstreams,
        filters=filters,
        caches=caches,
        redis=redis,
        log=log,
    )


#: The largest error page read; a page is held in memory for the life of
#: the configuration.
ERROR_PAGE_LIMIT = 1024 * 1024


def read_error_pages(
    config: Config, directory: Directories, problems: List[Problem]
) -> Config:
    """
    The configuration with the error pages of every route and listener
    read (from absolute paths), so the hot path never reads a file; a page
    that cannot be read is added to C{problems}.
    """
    routes = tuple(
        attr.evolve(
            route,
            error_pages=_read_pages(
                route.error_pages, "routes[%d]" % (route.index,), directory, problems
            ),
        )
        for route in config.routes
    )
    listeners = {
        listener_name: attr.evolve(
            listener,
            error_pages=_read_pages(
                listener.error_pages,
                "listeners" + key_path(listener_name),
                directory,
                problems,
            ),
        )
        for listener_name, listener in config.listeners.items()
    }
    return attr.evolve(config, routes=routes, listeners=listeners)


def _read_pages(
    pages: Tuple[ErrorPage, ...],
    prefix: str,
    directory: Directories,
    problems: List[Problem],
) -> Tuple[ErrorPage, ...]:
    """
    Read the files of C{pages}, the C{error_pages} at key path C{prefix}.
    """
    read = []
    for page in pages:
        path = os.path.abspath(os.path.join(directory(prefix), page.path))
        where = "%s.error_pages.%d" % (prefix, page.status)
        try:
            with open(path, "rb") as file:
                body = file.read(ERROR_PAGE_LIMIT + 1)
        except OSError as error:
            problems.append(
                (where, "cannot read %s: %s" % (page.path, error.strerror or error))
            )
            continue
        if len(body) > ERROR_PAGE_LIMIT:
            problems.append(
                (where, "%s is larger than 1 MiB; keep it small" % (page.path,))
            )
            continue
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        read.append(attr.evolve(page, path=path, body=body, content_type=content_type))
    return tuple(read)
