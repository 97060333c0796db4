"""Outgoing webhooks: product services hear what happened to their mail.

``outbox`` writes events with the facts they report; ``delivery`` drains them on the
``webhooks`` queue's worker, signed (``signing``, Standard Webhooks) and checked
(``safety``) at delivery time; ``endpoints`` → ``service`` → ``repository`` is the API.
"""
