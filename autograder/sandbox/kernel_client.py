"""The kernel client the grader talks to its sandboxed kernels with.

jupyter_client's ``wait_for_ready`` ends by draining the IOPub channel until it has been quiet for
0.2 s: a fixed fifth of a second of doing nothing per kernel, which was a quarter of the
grader's whole per-submission time for a small notebook. :class:`QuickReadyClient` drains
IOPub only up to the kernel's "idle" status for its own ``kernel_info`` request -- the last
message that request causes -- so it returns as soon as the kernel is ready, with the same
guarantees: the shell channel answers, IOPub is connected, and no start-up message is left
over to be mistaken for a cell's output.
"""

from __future__ import annotations

import time
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_core.utils import ensure_async

# How long to wait for IOPub to deliver a reply's status before asking again (IOPub is a
# PUB/SUB pair: messages sent before the subscription reached the kernel are lost, not queued).
IOPUB_GRACE_S = 0.5


def _is_idle_after(msg: dict, request_id: str) -> bool:
    return (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
            and msg["parent_header"].get("msg_id") == request_id)


class QuickReadyClient(AsyncKernelClient):
    """An AsyncKernelClient whose ``wait_for_ready`` returns when the kernel is ready."""

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await ensure_async(self.shell_channel.get_msg(timeout=1))
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                # Maybe the answer to an earlier request of this loop: wait for *its* idle status.
                request_id = reply["parent_header"].get("msg_id")
                try:
                    while not _is_idle_after(await ensure_async(self.iopub_channel.get_msg(timeout=IOPUB_GRACE_S)),
                                             request_id):
                        pass
                except Empty:
                    pass        # IOPub was not subscribed yet when the status went out: ask again
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await ensure_async(self.is_alive()):
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    wait_for_ready = _async_wait_for_ready
