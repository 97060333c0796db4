"""Engagement: opens and clicks per message, told apart as human or automated, and the
campaign reports built on them (links, mailbox providers, timeline, recipients export).

The rules are in :mod:`mailer.engagement.rules`; where they take effect, in the events
worker, is :func:`mailer.engagement.service.after_events`.
"""
