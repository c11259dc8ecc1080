"""Fake chat platforms: real HTTP/WebSocket servers on 127.0.0.1 that speak the platforms' protocols."""
