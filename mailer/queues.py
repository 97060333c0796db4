"""The arq queues, named once: for the workers, the CLI and the code that enqueues."""

from __future__ import annotations

SEND_QUEUE = "arq:send"  # campaign starts and batches
TRANSACTIONAL_QUEUE = "arq:transactional"  # transactional messages: the priority lane
EVENTS_QUEUE = "arq:events"  # SNS notifications to process (the feedback loop)
IMPORT_QUEUE = "arq:imports"  # CSV contact imports (and the idempotency-key sweep)

# ``mailer worker --queues`` names → arq queues
QUEUES: dict[str, str] = {
    "send": SEND_QUEUE,
    "transactional": TRANSACTIONAL_QUEUE,
    "events": EVENTS_QUEUE,
    "imports": IMPORT_QUEUE,
}

# Worked in a process of their own by a ``mailer worker`` of several queues: parsing a
# CSV file and upserting its chunks is CPU work that must not share an event loop with
# the senders (every millisecond it holds the loop delays the SES calls in flight).
OWN_PROCESS = ("imports",)
