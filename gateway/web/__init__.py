"""The aiohttp side: app factory, the one middleware, dispatch, REST v1 handlers, pages, body reading."""
