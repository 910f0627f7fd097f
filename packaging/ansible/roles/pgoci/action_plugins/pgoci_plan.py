# pgoci role: show pgoci's plan as a diff (ansible-playbook --diff).
#
# An action plugin of the role: it runs on the controller only (nothing is
# sent to the host) and returns `changed` as given and a `diff` of two
# texts, the instance as it is (`before`) and as pgoci's plan leaves it
# (`after`), which Ansible prints under --diff like a file's diff.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Return a diff of `before` and `after`; change nothing anywhere."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("before", "after", "before_header", "after_header", "changed"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        before = str(args.get("before") or "")
        after = str(args.get("after") or "")
        if before and not before.endswith("\n"):
            before += "\n"
        if after and not after.endswith("\n"):
            after += "\n"
        result["changed"] = boolean(args.get("changed", before != after), strict=False)
        result["diff"] = {
            "before": before,
            "after": after,
            "before_header": str(args.get("before_header") or "before"),
            "after_header": str(args.get("after_header") or "after"),
        }
        result["failed"] = False
        return result
