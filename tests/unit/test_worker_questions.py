"""
The supervisor's side of a worker's pipe, without processes: questions
matched to answers by id, one the worker does not answer in time, and
what the admin API answers then.
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.python.failure import Failure

from txrevproxy.app.admin import AdminAPI
from txrevproxy.app.worker import ANSWERS_FD
from txrevproxy.app.workers import ANSWER_TIMEOUT, WorkerFailed, WorkerProcess

from .test_redis_client import logged  # noqa: F401 (a fixture)


class Pipe:
    """
    The process transport as L{WorkerProcess.ask} uses it: the questions
    written to the worker's standard input.
    """

    pid = 4242

    def __init__(self) -> None:
        self.questions = []

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.questions.append(json.loads(data))


class Supervisor:
    def __init__(self) -> None:
        self.reactor = Clock()


def worker(index: int = 1) -> WorkerProcess:
    process = WorkerProcess(Supervisor(), index)
    process.makeConnection(Pipe())
    return process


def answer(process: WorkerProcess, question, result) -> None:
    line = json.dumps({"id": question["id"], "result": result}).encode() + b"\n"
    process.childDataReceived(ANSWERS_FD, line)


def test_answers_fire_their_questions_whatever_their_order():
    process = worker()
    first, second = process.ask("status"), process.ask("routes")
    one, two = process.transport.questions
    answer(process, two, "b")
    answer(process, one, "a")
    assert (first.result, second.result) == ("a", "b")


def test_a_question_not_answered_in_time_fails_saying_which_worker_and_is_forgotten():
    # A reload logs and answers this sentence as its problem.
    process = worker(1)
    late = process.ask("reload")
    process.supervisor.reactor.advance(ANSWER_TIMEOUT)
    assert late.result.check(WorkerFailed)
    assert str(late.result.value) == "worker 1 did not answer within 10s"
    late.addErrback(lambda _: None)
    assert process._answers == {}
    answer(process, process.transport.questions[0], [])  # too late: dropped
    following = process.ask("status")
    answer(process, process.transport.questions[1], "on time")
    assert following.result == "on time"


def test_the_admin_api_answers_503_with_the_sentence_when_a_worker_fails(logged):  # noqa: F811
    api = AdminAPI(None, Clock())
    reply = api._failed(Failure(WorkerFailed("worker 1 did not answer within 10s")))
    assert reply.status == 503
    assert json.loads(reply.body) == {"error": "worker 1 did not answer within 10s"}
    assert [formatEvent(event) for event in logged] == [
        "admin request failed: worker 1 did not answer within 10s"
    ]
