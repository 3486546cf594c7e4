"""DiscussionForums: forum `.mongo` dumps into `forum_posts`.

Registered by name so the pipeline's order and dependency rule hold; it claims no files and
does nothing until its implementation lands.
"""
from optimus.services.base import Service, register


@register
class DiscussionForums(Service):
    name = "DiscussionForums"
    needs = ()
