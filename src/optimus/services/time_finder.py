"""TimeFinder: `person_course_day`: events placed on their own day.

Registered by name so the pipeline's order and dependency rule hold; it claims no files and
does nothing until its implementation lands.
"""
from optimus.services.base import Service, register


@register
class TimeFinder(Service):
    name = "TimeFinder"
    needs = ("Clickstream",)
