"""ContentGen: batch content generation with the OpenAI Responses API.

A wing per stage of the flow, each a package with one public face (its ``__init__``):

    intake -> prompts -> planning -> run (client, limits) -> db -> reports
                                  money: prices, cache policies, budget

``batchmode`` sends through the Batch API instead; ``simulator`` is the offline API;
``cli`` is the ``contentgen`` command. ``errors``, ``settings`` and ``tomlfile`` are shared
by all. Start reading at ``pipeline.run.runner``; ``docs/architecture.md`` walks the wings.
This package never imports Prefect (``flows/`` does).
"""
