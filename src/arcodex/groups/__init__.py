"""Groups of products converted together (padocc's groups): members, phases, resume.

A group is made from a members file (CSV or YAML, one row per member: its id, its
sources, any :class:`~arcodex.convert.ConvertSpec` field, and attribute ``updates`` and
``removals``) and lives in the catalog: a ``collection`` record and one
``group-member`` record per member with its status. Its phases run on one Dask
cluster, every member in its own unit of work; running again resumes::

    from arcodex.groups import init_group, run_group, group_status

    init_group("catalog", "cmip", "members.csv")
    run = run_group("catalog", "cmip")              # scan, compute, validate
    group_status("catalog", "cmip").counts          # {'done': 3, 'failed': 1, ...}
    run_group("catalog", "cmip", only="failed")     # after fixing what failed
"""

from __future__ import annotations

from arcodex.groups._api import group_status, init_group, list_groups, member_detail
from arcodex.groups._records import GroupStatus, MemberStatus
from arcodex.groups._rows import MemberRow
from arcodex.groups._run import GroupRun, MemberOutcome, run_group

__all__ = [
    "GroupRun",
    "GroupStatus",
    "MemberOutcome",
    "MemberRow",
    "MemberStatus",
    "group_status",
    "init_group",
    "list_groups",
    "member_detail",
    "run_group",
]
