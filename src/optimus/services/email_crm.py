"""EmailCRM: the Email CRM export.

Registered by name so the pipeline's order and dependency rule hold; it claims no files and
does nothing until its implementation lands.
"""
from optimus.services.base import Service, register


@register
class EmailCRM(Service):
    name = "EmailCRM"
    needs = ("PersonCourse", "DatabaseState")
