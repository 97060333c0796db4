"""Tools for running and testing locally: the SES stand-in and mailbox simulator, the
embedded stack behind ``mailer dev`` and the demo. Nothing in the product imports them."""
