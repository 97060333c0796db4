"""The arq queues, named once: for the workers, the CLI and the code that enqueues."""

from __future__ import annotations

SEND_QUEUE = "arq:send"  # campaign starts and batches
TRANSACTIONAL_QUEUE = "arq:transactional"  # transactional messages: the priority lane
EVENTS_QUEUE = "arq:events"  # SNS notifications to process (the feedback loop)
IMPORT_QUEUE = "arq:imports"  # CSV contact imports (and the idempotency-key sweep)
WEBHOOKS_QUEUE = "arq:webhooks"  # outgoing webhook deliveries (mailer.webhook_out)

# ``mailer worker --queues`` names → arq queues
QUEUES: dict[str, str] = {
    "send": SEND_QUEUE,
    "transactional": TRANSACTIONAL_QUEUE,
    "events": EVENTS_QUEUE,
    "imports": IMPORT_QUEUE,
    "webhooks": WEBHOOKS_QUEUE,
}

# Worked in a process of their own by a ``mailer worker`` of several queues: parsing a
# CSV file and upserting its chunks is CPU work that must not share an event loop with
# the senders (every millisecond it holds the loop delays the SES calls in flight). The
# transactional lane's every step (poll, claim, mark, slot, call) is a turn of its event
# loop: in the campaign's process a turn waited behind the campaign's 64 senders and their
# flushes (20-70 ms a turn on a loaded machine, 300-700 ms for a message at the tail); in
# a process of its own, idle between messages, its turns are short and the scheduler
# runs it as soon as a message comes. Its slots still come before marketing's (the
# limiter's Redis state is shared by every process).
# The deliverer of outgoing webhooks too: its requests never take a turn from the senders.
OWN_PROCESS = ("imports", "transactional", "webhooks")
