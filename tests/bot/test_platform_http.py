"""The platforms' JSON posts (bot/platforms/http.py): straight to the client's transport, with its headers and timeouts."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from bot.platforms.http import JsonPoster

URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K1"


def _recording(seen: list[httpx.Request], answer: dict[str, object] | None = None) -> httpx.MockTransport:
    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        await request.aread()
        return httpx.Response(200, json=answer or {"errcode": 0, "errmsg": "ok"}, headers={"Set-Cookie": "a=b; Path=/"})

    return httpx.MockTransport(handle)


def test_a_post_goes_through_the_clients_transport_with_its_headers_and_timeouts() -> None:
    seen: list[httpx.Request] = []

    async def main() -> httpx.Response:
        timeout = httpx.Timeout(7.0, connect=3.0)
        async with httpx.AsyncClient(transport=_recording(seen), timeout=timeout, headers={"X-Extra": "1"}) as http:
            poster = JsonPoster(http)
            first = await poster.post(URL, json.dumps({"msgtype": "text"}).encode())
            second = await poster.post(URL, b'{"n": 2}')
            assert not http.cookies  # a platform's Set-Cookie is not kept
            assert second.json() == {"errcode": 0, "errmsg": "ok"}
            return first

    response = anyio.run(main)
    assert response.status_code == 200 and response.json() == {"errcode": 0, "errmsg": "ok"}
    assert response.request is seen[0]
    assert [r.content for r in seen] == [b'{"msgtype": "text"}', b'{"n": 2}']
    for request in seen:
        assert request.method == "POST" and str(request.url) == URL
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Content-Length"] == str(len(request.content))
        assert request.headers["Host"] == "qyapi.weixin.qq.com"
        assert request.headers["X-Extra"] == "1" and request.headers["User-Agent"].startswith("python-httpx/")
        assert request.extensions["timeout"] == {"connect": 3.0, "read": 7.0, "write": 7.0, "pool": 7.0}


def test_a_mounted_transport_such_as_a_proxy_is_used_for_its_urls() -> None:
    default: list[httpx.Request] = []
    proxied: list[httpx.Request] = []

    async def main() -> None:
        mounts = {"https://qyapi.weixin.qq.com": _recording(proxied)}
        async with httpx.AsyncClient(transport=_recording(default), mounts=mounts) as http:
            poster = JsonPoster(http)
            await poster.post(URL, b"{}")
            await poster.post("https://other.example/x", b"{}")

    anyio.run(main)
    assert [str(r.url) for r in proxied] == [URL]
    assert [str(r.url) for r in default] == ["https://other.example/x"]


def test_a_client_with_hooks_is_used_as_it_is() -> None:
    seen: list[httpx.Request] = []
    hooked: list[str] = []

    async def hook(request: httpx.Request) -> None:
        hooked.append(str(request.url))

    async def main() -> None:
        async with httpx.AsyncClient(transport=_recording(seen), event_hooks={"request": [hook]}) as http:
            response = await JsonPoster(http).post(URL, b"{}")
            assert response.json()["errcode"] == 0

    anyio.run(main)
    assert hooked == [URL] and seen[0].headers["Content-Type"] == "application/json"


def test_transport_errors_and_a_closed_client_raise_as_the_client_does() -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")  # as a transport raises it: the request is attached on the way out

    async def main() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
        poster = JsonPoster(http)
        with pytest.raises(httpx.ConnectError) as refused:
            await poster.post(URL, b"{}")
        assert str(refused.value.request.url) == URL
        await http.aclose()
        with pytest.raises(RuntimeError):
            await poster.post(URL, b"{}")

    anyio.run(main)
