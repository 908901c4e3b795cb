"""The Lambda harness lives in ``butler_dev.lambda_harness`` (devtools/), one copy shared with the demo; re-exported
here for the handler tests: a function's module loaded as Lambda does, its context, the recorded events, an SNS
inbox."""

from butler_dev.lambda_harness import ROOT, Context, load_event, load_handler, notice_inbox

__all__ = ["ROOT", "Context", "load_event", "load_handler", "notice_inbox"]
