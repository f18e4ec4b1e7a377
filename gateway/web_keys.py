"""Typed keys for state on the aiohttp app and request."""

from __future__ import annotations

from aiohttp import web

from gateway.services import RequestInfo, Services

SERVICES = web.AppKey("tfs_gateway_services", Services)
INFO = web.RequestKey("tfs_gateway_info", RequestInfo)
