import asyncio

import pulumi

from tests.infra.conftest import run_pulumi


def test_the_mocks_run_after_asyncio_run_left_the_thread_without_a_loop():
    # The e2e load client uses asyncio.run(), which leaves the main thread with no current event loop;
    # infra tests collected after it in the same pytest session must still run the program.
    asyncio.run(asyncio.sleep(0))
    run = run_pulumi(lambda: pulumi.export("answer", pulumi.Output.from_input("42")), stack="dev", config={})
    assert run.outputs["answer"] == "42"
