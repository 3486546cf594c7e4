"""IPToCountry: `ip_geo`: the country of every IP seen in events.

Registered by name so the pipeline's order and dependency rule hold; it claims no files and
does nothing until its implementation lands.
"""
from optimus.services.base import Service, register


@register
class IPToCountry(Service):
    name = "IPToCountry"
    needs = ("Clickstream",)
