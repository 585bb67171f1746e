"""Clients of the chat daemon for other programs: ``residentd.chat.client`` speaks its backend
HTTP API (``residentd.apps.chat.api``), synchronously or with asyncio."""
