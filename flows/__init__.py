"""Prefect flows and deployments: thin wrappers over the ``pipeline`` library.

``pipeline/`` never imports Prefect; everything Prefect-specific lives here:

- ``flows.parameters``: the typed parameters that render as the UI's Custom-run form;
- ``flows.chunks``: the chunk loop (one Prefect task per chunk of requests), Prefect-free;
- ``flows.reporting``: per-profile and cost-report tables read from the job database;
- ``flows.gate``: the shared token gate (a Prefect global concurrency limit used as a rate limit);
- ``flows.batch``: the nightly and ad-hoc flows; ``flows.cost_report``: the cost-report flow;
- ``flows.deployments``: the deployments and ``serve_deployments`` (``contentgen serve``).
"""
