"""Chat command handlers: parse what people type, decide, and return replies.

This package knows nothing about WeCom, DingTalk or HTTP; `bot/` adapters translate
platform messages into `handlers.messages.Inbound` and `Reply` values back out.
"""
