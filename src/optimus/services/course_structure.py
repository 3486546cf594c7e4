"""CourseStructure: course exports into `courses`, `course_blocks` and www JSON.

Registered by name so the pipeline's order and dependency rule hold; it claims no files and
does nothing until its implementation lands.
"""
from optimus.services.base import Service, register


@register
class CourseStructure(Service):
    name = "CourseStructure"
    needs = ()
