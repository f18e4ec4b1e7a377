"""The describe package: the gateway's API as an OpenAPI document, built from plain facts."""
