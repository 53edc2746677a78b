"""The inquiry node: JSON API, OCSP responder and web page over the index."""

from __future__ import annotations

from dpki.inquiry.app import ServeConfig, create_app
from dpki.inquiry.ocsp import OcspResponder, StatusIndex, load_or_create_identity

__all__ = ["OcspResponder", "ServeConfig", "StatusIndex", "create_app", "load_or_create_identity"]
