"""The Admin API's usage and cost reports, answered from this server's run ledger."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized

from claude_nb.service import reports

from .base import ApiHandler, api_method


class UsageReportHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self):
        self.write_json(reports.usage_report_from_query(self.service.store,
                                                        self.request.query_arguments))


class CostReportHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self):
        self.write_json(reports.cost_report_from_query(self.service.store,
                                                       self.request.query_arguments))
