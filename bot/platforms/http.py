"""JSON posts to a platform's API over the process's shared httpx client, without the client's per-request extras.

Every delivered reply is one such post, in the process that also acknowledges callbacks. `AsyncClient.post`
spends about a fifth of its CPU on things a platform call never uses: merging the client's headers and
cookies into each request, extracting cookies from each answer (which builds a urllib request and parses
the URL again), auth and redirect handling, and an INFO log line. Here the request goes straight to the
transport the client would pick for the URL (its connection pool, and a proxy mount if the environment set
one), with headers merged once and the client's timeouts.
"""

from __future__ import annotations

from collections import OrderedDict

import httpx

JSON_CONTENT_TYPE = "application/json"
_URL_CACHE_SIZE = 64  # webhook URLs repeat (one per group); a callback's response_url is used once


class JsonPoster:
    """POST already-encoded JSON bodies through one `httpx.AsyncClient`'s transports."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self._headers = httpx.Headers(http.headers)
        self._headers["Content-Type"] = JSON_CONTENT_TYPE
        self._urls: OrderedDict[str, httpx.URL] = OrderedDict()
        # Anything that needs the client's own path (hooks, auth, following redirects, cookies) goes through it.
        hooks = http.event_hooks
        self._lean = not (hooks["request"] or hooks["response"] or http.auth is not None or http.follow_redirects)
        self._timeout = http.timeout.as_dict()

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpx.URL(url)
            self._urls[url] = parsed
            if len(self._urls) > _URL_CACHE_SIZE:
                self._urls.popitem(last=False)
        return parsed

    async def post(self, url: str, data: bytes) -> httpx.Response:
        """The platform's answer, read in full; raises httpx.HTTPError as `AsyncClient.post` does."""
        if not self._lean or self.http.cookies:
            return await self.http.post(url, content=data, headers={"Content-Type": JSON_CONTENT_TYPE})
        if self.http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        request = httpx.Request(
            "POST", self._url(url), content=data, headers=self._headers,
            extensions={"timeout": self._timeout},
        )
        # The client's choice of transport (mounts, proxies from the environment); a private method, pinned
        # by tests/bot/test_platform_http.py.
        transport = self.http._transport_for_url(request.url)
        try:
            response = await transport.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request  # as the client's own path attaches it
            raise
        response.request = request  # also what the body's read errors name
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response
