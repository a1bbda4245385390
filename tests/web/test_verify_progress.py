"""A control-CT check's progress says honestly which stage failed: the stage that was running gives no "done"."""

from __future__ import annotations


class TestCheckProgress:
    """What a check's page says of each stage once it ended (no worker run: the job's row as the worker leaves it)."""

    def _view(self, **kw):
        from osteoplan.web.routers.verify import check_view
        from osteoplan.workflow import models as m

        job = m.PlanJob(id=7, options={"kind": "verify", "stage": "pin"}, cancel_requested=False, **kw)
        return {s["key"]: s["status_words"] for s in check_view(None, job)["stages"]}, check_view(None, job)

    def test_failed_while_measuring(self):
        """The stage running when the check failed is 'failed', later ones 'not reached', none 'done' after it."""
        marks, view = self._view(state="failed", stage="measure", stages_done=["deid", "read"], exit_code=2,
                                 error="No metal instrument was found near the planned path.")
        assert marks == {"deid": "done", "read": "done", "measure": "failed", "images": "not reached",
                         "save": "not reached"}
        assert view["not_measurable"] is True

    def test_failed_before_reading(self):
        """A check that failed before any stage (its CT gone) says no stage was done, and is not 'not measured'."""
        marks, view = self._view(state="failed", stage=None, stages_done=[], exit_code=None,
                                 error="The control CT is no longer on the server; start the check again.")
        assert set(marks.values()) == {"not reached"} and "retrieve" not in marks
        assert view["not_measurable"] is False

    def test_running_pacs_check(self):
        """A PACS check lists its retrieve stage; while it runs, later stages are pending."""
        from osteoplan.web.routers.verify import check_view
        from osteoplan.workflow import models as m

        job = m.PlanJob(id=8, options={"kind": "verify", "pacs_retrieve": True}, state="running", stage="deid",
                        stages_done=["retrieve"], cancel_requested=False)
        assert [(s["key"], s["status"]) for s in check_view(None, job)["stages"]] == [
            ("retrieve", "done"), ("deid", "current"), ("read", "pending"), ("measure", "pending"),
            ("images", "pending"), ("save", "pending")]
