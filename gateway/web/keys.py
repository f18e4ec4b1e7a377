"""Typed keys for state on the aiohttp app and request."""

from __future__ import annotations

from aiohttp import web

from gateway.backend.readiness import Health
from gateway.pipeline.overview import Board
from gateway.pipeline.services import RequestInfo, Services, ServicesRef

SERVICES = web.AppKey("tfs_gateway_services", ServicesRef)  # swapped whole by a config reload
PINNED = web.RequestKey("tfs_gateway_pinned_services", Services)  # the generation a request started with
INFO = web.RequestKey("tfs_gateway_info", RequestInfo)
HEALTH = web.AppKey("tfs_gateway_health", Health)  # the draining flag and the readiness checks
SPECIALS = web.AppKey("tfs_gateway_specials", dict)  # the gateway's own pages: path -> endpoint
STATUS = web.AppKey("tfs_gateway_status", Board)  # the status page's metric ring and model states
OIP_MODEL = web.RequestKey("tfs_gateway_oip_model", str)  # an OIP route's {model}, as the URL gave it
