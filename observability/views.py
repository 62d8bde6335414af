"""/metrics: the Prometheus text exposition, for scrapers Mailroom trusts.

Who may read it: with METRICS_TOKEN set, a request carrying
`Authorization: Bearer <METRICS_TOKEN>`; without it, a request straight from
a loopback or private address (no proxy header: behind a proxy every request
comes from the proxy's own address). Staff signed in may always read it.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from observability.metrics import REGISTRY

PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
# Loopback and the private ranges (RFC 1918, RFC 4193), named: Python's
# is_private also counts documentation and other reserved ranges.
PRIVATE_NETWORKS = [
    ipaddress.ip_network(network)
    for network in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7")
]


def bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def from_private_network(request: HttpRequest) -> bool:
    """A direct request from this machine or the private network, not one relayed by a proxy."""
    if any(header in request.headers for header in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in PRIVATE_NETWORKS)


def may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token and hmac.compare_digest(bearer_token(request).encode(), token.encode()):
        return True
    if not token and from_private_network(request):
        return True
    # Last: reading the user costs a session query.
    return request.user.is_authenticated and request.user.is_staff


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Every Mailroom metric, fresh from the database; 401 without the token when one is set, else 403."""
    if not may_scrape(request):
        if settings.METRICS_TOKEN:
            response = HttpResponse("A bearer token is needed.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse("Only from this machine or the private network.\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
