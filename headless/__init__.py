"""Headless runner: executes editor-format (UI) workflows in a real ComfyUI without a browser.

`python -m headless WORKFLOW.json --output DIR [--set "Title.input=value" ...]` converts the workflow to the API
format using the server's own `/object_info`, queues it, streams progress and exits non-zero with the failing
node's error. This is how users batch-process videos and how CI executes `example_workflows/`.
"""
