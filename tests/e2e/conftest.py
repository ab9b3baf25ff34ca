"""Fixtures for the end-to-end tests: ternd nodes that are always stopped at
teardown, where each must exit 0 on SIGTERM within 15 s and must not have
logged an error line the test did not declare."""

import os

import pytest

import ternlib


def pytest_collection_modifyitems(config, items):
    missing = [p for p in (ternlib.TERND, ternlib.TERNCTL) if not os.access(p, os.X_OK)]
    if missing:
        skip = pytest.mark.skip(reason=f"not built: {', '.join(missing)} (set TERND/TERNCTL)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture
def make_ternd(tmp_path):
    """make_ternd(start=True, users=("alice", "bob"), **config) -> Ternd.
    Every node made is stopped and checked at teardown."""
    nodes = []

    def make(start=True, users=("alice", "bob"), preexec_fn=None, **settings):
        node = ternlib.Ternd(str(tmp_path / f"node{len(nodes) + 1}"), settings)
        node.preexec_fn = preexec_fn
        nodes.append(node)
        if start:
            node.start()
            for user in users:
                node.add_user(user)
        return node

    yield make

    problems = []
    for node in nodes:
        problems += node.teardown_problems()
    if problems:
        pytest.fail("ternd teardown check failed:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def ternd(make_ternd):
    """A running node (domains = example.org, max_message_size = 1M) with
    users alice and bob."""
    return make_ternd()
