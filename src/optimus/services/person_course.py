"""PersonCourse: `person_course` and `course_profile`.

Registered by name so the pipeline's order and dependency rule hold; it claims no files and
does nothing until its implementation lands.
"""
from optimus.services.base import Service, register


@register
class PersonCourse(Service):
    name = "PersonCourse"
    needs = ("IPToCountry", "TimeFinder", "DatabaseState")
